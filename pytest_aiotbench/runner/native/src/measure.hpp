// The runner protocol, native side: one JSON request in, one JSON result out.
//
// The same contract as runner/aiot_runner.py, stated once in runner/protocol_schema.json:
// its version and every field name reach this code as protocol_fields.hpp, generated from the
// schema by cmake/protocol.cmake. The runner owns the clock and the stopping rule; the host
// only judges what comes back.
#pragma once

#include <iosfwd>
#include <string>

#include "backend.hpp"
#include "protocol_fields.hpp"

namespace aiot {

using protocol::kProtocolVersion;

// Answer one request; returns the process exit code (0 ok, 2 a reported failure).
int serve(const std::string& request_text, Backend& backend, std::ostream& out);

// What --describe answers: the protocol version, the runner, the framework.
std::string describe();

// Test hook for the statistics, the same specification as aiot_runner.py's:
// {"samples": [...], "confidence_level": c, "probabilities": [...]} -> the median's bounds' ranks,
// the median, the relative half-width and the normal quantile of each probability.
int describe_statistics(const std::string& request_text, std::ostream& out);

}  // namespace aiot
