// The one thing a framework adds to the native runner: load an artifact, run one batch.
//
// Everything else (the request, the clock, the stopping rule, probes, labelled images,
// memory and thermal readings, the result) is the shared core in measure.cpp, so every
// backend is timed the same way. Each backend is its own executable
// (aiot_runner_<framework>): a device gets only the libraries of the framework it runs,
// and one framework failing to build never stops the others.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol_fields.hpp"

namespace aiot {

// An operator's `delegate` where the framework ran it with its own kernels (the schema's enum
// no_delegate).
inline constexpr const char* kNoDelegate = protocol::no_delegate::none;

// The framework's name as the host knows it: "onnxruntime", "tflite", ...; defined by the
// backend_<framework>.cpp of each executable.
extern const char* const kFrameworkName;

// One operator's time in a profiling pass, as the framework's profiler reports it: one record
// per operator and inference, or already summed over the inferences (the core sums records of
// the same operator either way). `delegate` is the kernel library that ran it, kNoDelegate for the
// framework's own kernels (an operator outside the delegate).
struct OpRecord {
  std::string op_type, name, delegate;
  double time_s = 0;
};

// A failure the host should see with the stage it happened in ("load", "infer", ...).
class RunnerError : public std::runtime_error {
 public:
  RunnerError(std::string stage, const std::string& message)
      : std::runtime_error(message), stage_(std::move(stage)) {}
  const std::string& stage() const { return stage_; }

 private:
  std::string stage_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Load the artifact and prepare to run it with this many CPU threads.
  // Throw RunnerError("load", ...) with the framework's own message on failure.
  virtual void load(const std::string& path, int threads) = 0;

  // One inference of one batch. `input` is float32, C order, of `shape` (the model's input
  // shape, batch 1). Fill `output` with the first output, flattened, as float32.
  // Throw RunnerError("infer", ...) on failure.
  virtual void infer(const std::vector<int64_t>& shape, const float* input,
                     std::vector<float>& output) = 0;

  // The framework's version as its library reports it (or as it was built against).
  virtual std::string version() const = 0;

  // Facts worth reporting beside the numbers (delegation, fallbacks).
  virtual std::vector<std::string> notes() const { return {}; }

  // Paired rounds switch between two loaded instances. Where idle threads spin-wait (ONNX
  // Runtime's intra-op pool does), the idle side takes the cores the timed side needs: the
  // rounds then time two fresh instances told quiet_idle_threads() before load().
  virtual bool spins_when_idle() const { return false; }
  virtual void quiet_idle_threads() {}

  // Per-operator profiling (--aiot-profile), on an instance of its own, after timing, so the
  // profiler's cost never touches a timed sample: enable_profiling() before load(), then
  // start_profile(), the profiled infer() calls, and stop_profile() with the records of every
  // operator run since start_profile(). enable_profiling() returns why this backend cannot
  // profile ("" where it can); profile_source() names the profiler.
  virtual std::string enable_profiling() {
    return std::string("the native runner's ") + kFrameworkName +
           " backend has no per-operator profiler";
  }
  virtual std::string profile_source() const { return ""; }
  virtual void start_profile() {}
  virtual std::vector<OpRecord> stop_profile() { return {}; }
};

// Defined by exactly one backend_<framework>.cpp per executable.
std::unique_ptr<Backend> make_backend();

}  // namespace aiot
