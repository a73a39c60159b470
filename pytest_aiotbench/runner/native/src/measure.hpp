// The runner protocol, native side: one JSON request in, one JSON result out.
//
// The same contract as runner/aiot_runner.py, written down in runner/protocol.py: the
// host's typed classes parse what this writes. The runner owns the clock and the stopping
// rule; the host only judges what comes back.
#pragma once

#include <iosfwd>
#include <string>

#include "backend.hpp"

namespace aiot {

// The protocol version this runner implements. Raise it with the host's
// PROTOCOL_VERSION (runner/protocol.py) when the code here implements the new contract.
constexpr int kProtocolVersion = 3;

// Answer one request; returns the process exit code (0 ok, 2 a reported failure).
int serve(const std::string& request_text, Backend& backend, std::ostream& out);

// Test hook for the statistics: {"samples": [...], "confidence": c} -> the bounds' ranks.
int describe_median_bounds(const std::string& request_text, std::ostream& out);

}  // namespace aiot
