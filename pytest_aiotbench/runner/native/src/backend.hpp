// The one thing a framework adds to the native runner: load an artifact, run one batch.
//
// Everything else (the request, the clock, the stopping rule, probes, labelled images,
// memory and thermal readings, the result) is the shared core in measure.cpp, so every
// backend is timed the same way. Each backend is its own executable
// (aiot_runner_<framework>): a device gets only the libraries of the framework it runs,
// and one framework failing to build never stops the others.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "npy.hpp"
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

// One model input of one inference: the request's tensor file's name and dtype, one row of
// it (batch 1, C order) in a buffer the core owns, which stays put between calls.
struct InputTensor {
  std::string name;  // as the request (the card) names it; for messages
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

// Copies `input` into `destination`, `elements` values of `to` (the type the artifact
// declares for it), converting where the two differ: int64 ids into a TFLite file's int32,
// float32 into float16. A conversion that makes no sense (float to bool) or a value that
// does not fit is a RunnerError("inputs", ...) naming the input and both types.
inline void copy_input(const InputTensor& input, DType to, void* destination, size_t elements) {
  if (input.dtype == to) {
    std::memcpy(destination, input.data, elements * dtype_bytes(to));
    return;
  }
  // The message is made only on failure: this runs in every timed call.
  auto fail = [&](const std::string& why) {
    return RunnerError("inputs", std::string(kFrameworkName) + ": input '" + input.name +
                                     "' is given as " + dtype_name(input.dtype) +
                                     ", the artifact takes " + dtype_name(to) + ": " + why);
  };
  if (!can_convert(input.dtype, to)) throw fail("no sensible conversion");
  try {
    convert_elements(input.dtype, input.data, to, destination, elements);
  } catch (const std::range_error& error) {
    throw fail(error.what());
  }
}

// The RunnerError for a request whose inputs are not the artifact's in number.
inline RunnerError input_count_error(size_t given, size_t taken) {
  return RunnerError("inputs", std::string(kFrameworkName) + ": the request gives " +
                                   std::to_string(given) + " input" + (given == 1 ? "" : "s") +
                                   ", the artifact takes " + std::to_string(taken));
}

class Backend {
 public:
  virtual ~Backend() = default;

  // Load the artifact and prepare to run it with this many CPU threads.
  // Throw RunnerError("load", ...) with the framework's own message on failure.
  virtual void load(const std::string& path, int threads) = 0;

  // One inference of one batch: inputs[i] is fed to the artifact's input i (converted where
  // its dtype is not the one the artifact declares: copy_input). Fill `outputs` with every
  // output, in the artifact's order (output_names()), each flattened and as float. Once the
  // sizes are known, a call must not reallocate `outputs`: the caller keeps it between calls.
  // Throw RunnerError("inputs", ...) for inputs the artifact cannot take (their number, a
  // dtype, a shape), RunnerError("infer", ...) for a failure of the framework.
  virtual void infer(const std::vector<InputTensor>& inputs,
                     std::vector<std::vector<float>>& outputs) = 0;

  // The names the artifact gives its outputs, in the order infer() answers them. Valid after
  // load(); where the artifact does not declare its outputs (a PyTorch Mobile module), after
  // the first infer().
  virtual std::vector<std::string> output_names() const = 0;

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
