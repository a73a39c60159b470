// PyTorch Mobile: a .ptl module (saved with _save_for_lite_interpreter) run by the lite
// interpreter, on CPU, as the Python runner's PyTorchMobileBackend does: the given number of
// intra-op threads, inference mode around forward, the first output as float32.
//
// Per-operator profiles come from ATen's RecordFunction callbacks (OpProfiler below), which
// every libtorch build has, the lite interpreter's included.
#include "backend.hpp"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/mobile/import.h>
#include <torch/csrc/jit/mobile/module.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace aiot {

const char* const kFrameworkName = "pytorch-mobile";

namespace {

// c10::Error's what() carries a C++ backtrace; the host wants the message alone.
std::string message_of(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    return torch_error->what_without_backtrace();
  }
  return error.what();
}

// The self time of every operator the interpreter thread runs, from RecordFunction callbacks
// of the scopes torch.profiler shows for a lite module: LITE_INTERPRETER, the interpreter's
// call of each OP instruction, and FUNCTION, the dispatcher's operator calls under it (both
// carry the operator's name). An operator's self time is its wall time less that of the
// operators nested in it, so no time counts twice. Each record is named after the top-level
// call (no operator parent on this thread) it ran under, with that call's position in the
// inference: the interpreter's own share of a convolution and the _slow_conv2d_forward under
// it are both "aten::_convolution#3". The Python runner reads torch.profiler the same way.
// Ops on intra-op worker threads are inside their parent's wall time.
class OpProfiler {
 public:
  void start() {
    remove();
    owner_ = std::this_thread::get_id();
    events_.clear();
    stack_.clear();
    position_ = 0;
    active_ = this;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&OpProfiler::on_start, &OpProfiler::on_end)
            .scopes({at::RecordScope::LITE_INTERPRETER, at::RecordScope::FUNCTION})
            .needsInputs(false)
            .needsOutputs(false)
            .needsIds(false));
    registered_ = true;
  }

  // Ends the profile (on the thread that started it): the records, summed per operator.
  std::vector<OpRecord> stop() {
    remove();
    std::vector<OpRecord> records;
    std::map<std::pair<std::string, std::string>, size_t> index;  // (op_type, name)
    for (const Event& event : events_) {
      const auto key = std::make_pair(event.op_type, top_names_[event.top]);
      auto found = index.find(key);
      if (found == index.end()) {
        index.emplace(key, records.size());
        OpRecord record;
        record.op_type = event.op_type;
        record.name = top_names_[event.top];
        // optimize_for_mobile's XNNPACK ops: prepacked::conv2d_clamp_run, ...
        record.delegate = event.op_type.rfind("prepacked::", 0) == 0 ? "XNNPACK" : kNoDelegate;
        record.time_s = event.self_s;
        records.push_back(std::move(record));
      } else {
        records[found->second].time_s += event.self_s;
      }
    }
    events_.clear();
    top_names_.clear();
    return records;
  }

  // Top-level positions count from 0 in each inference.
  void begin_inference() { position_ = 0; }

  ~OpProfiler() { remove(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Frame {
    Clock::time_point started;
    double nested_s;  // wall time of the operators nested in this one
    size_t top;       // the top-level operator's entry in top_names_
  };
  struct Event {
    std::string op_type;
    size_t top;
    double self_s;
  };

  void remove() {
    if (!registered_) return;
    at::removeCallback(handle_);
    registered_ = false;
    active_ = nullptr;
  }

  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& call) {
    OpProfiler* self = active_;
    if (self == nullptr || std::this_thread::get_id() != self->owner_) return nullptr;
    size_t top;
    if (self->stack_.empty()) {
      top = self->top_names_.size();
      self->top_names_.push_back(std::string(call.name()) + "#" +
                                 std::to_string(self->position_++));
    } else {
      top = self->stack_.back().top;
    }
    self->stack_.push_back({Clock::now(), 0.0, top});
    return nullptr;
  }

  static void on_end(const at::RecordFunction& call, at::ObserverContext*) {
    const Clock::time_point ended = Clock::now();
    OpProfiler* self = active_;
    if (self == nullptr || std::this_thread::get_id() != self->owner_ || self->stack_.empty()) {
      return;
    }
    const Frame frame = self->stack_.back();
    self->stack_.pop_back();
    const double wall_s = std::chrono::duration<double>(ended - frame.started).count();
    if (!self->stack_.empty()) self->stack_.back().nested_s += wall_s;
    self->events_.push_back({call.name(), frame.top, wall_s - frame.nested_s});
  }

  // The callbacks are plain function pointers: they find the profiler here. One profiling
  // instance per process at a time (the core's profiling pass).
  static inline OpProfiler* active_ = nullptr;
  std::thread::id owner_;
  at::CallbackHandle handle_ = 0;
  bool registered_ = false;
  std::vector<Frame> stack_;
  std::vector<Event> events_;
  std::vector<std::string> top_names_;  // "aten::conv2d#3", one per top-level call
  long position_ = 0;
};

class PyTorchMobileBackend : public Backend {
 public:
  void load(const std::string& path, int threads) override {
    // Same call as torch.set_num_threads in the Python runner. Inter-op threads are left
    // alone there too; forward of a traced module never forks onto that pool.
    if (threads > 0) {
      at::set_num_threads(threads);
    }
    try {
      module_.emplace(torch::jit::_load_for_mobile(path));
      // Looked up once: Module::forward would search the methods by name on every call.
      // The Method points at module_, which stays put inside this object.
      forward_.emplace(module_->get_method("forward"));
    } catch (const std::exception& error) {
      throw RunnerError("load", std::string(kFrameworkName) + ": cannot load " + path + ": " +
                                    message_of(error));
    }
  }

  void infer(const std::vector<int64_t>& shape, const float* input,
             std::vector<float>& output) override {
    if (!forward_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no module loaded");
    }
    try {
      if (shape != input_shape_) {
        prepare_input(shape);
      }
      std::memcpy(input_buffer_.data(), input, input_buffer_.size() * sizeof(float));

      if (profiler_) profiler_->begin_inference();
      c10::InferenceMode inference_mode;
      // Method takes its stack by value; this vector is the one allocation per call.
      c10::IValue result = (*forward_)(std::vector<c10::IValue>{input_tensor_});
      at::Tensor first = first_tensor(result).contiguous();
      if (first.scalar_type() != at::kFloat) {
        first = first.to(at::kFloat);
      }
      const auto count = static_cast<size_t>(first.numel());
      output.resize(count);
      std::memcpy(output.data(), first.data_ptr<float>(), count * sizeof(float));
    } catch (const RunnerError&) {
      throw;
    } catch (const std::exception& error) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": " + message_of(error));
    }
  }

  std::string enable_profiling() override {
    profiler_.emplace();
    return "";
  }

  std::string profile_source() const override {
    return "torch " + version() + " RecordFunction callbacks";
  }

  void start_profile() override {
    if (!profiler_) throw RunnerError("profile", std::string(kFrameworkName) + ": not enabled");
    try {
      profiler_->start();
    } catch (const std::exception& error) {
      throw RunnerError("profile", std::string(kFrameworkName) + ": " + message_of(error));
    }
  }

  std::vector<OpRecord> stop_profile() override {
    if (!profiler_) throw RunnerError("profile", std::string(kFrameworkName) + ": not enabled");
    return profiler_->stop();
  }

  std::string version() const override {
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && defined(TORCH_VERSION_PATCH)
    return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
           "." + std::to_string(TORCH_VERSION_PATCH);
#else
    return "unknown";
#endif
  }

 private:
  // The input tensor is a view of a buffer this object owns, so infer() only copies into it.
  void prepare_input(const std::vector<int64_t>& shape) {
    size_t count = 1;
    for (int64_t extent : shape) {
      if (extent < 0) {
        throw RunnerError("infer", std::string(kFrameworkName) + ": negative input extent");
      }
      count *= static_cast<size_t>(extent);
    }
    input_buffer_.assign(count, 0.0f);
    input_tensor_ = at::from_blob(input_buffer_.data(), shape,
                                  at::TensorOptions().dtype(at::kFloat));
    input_shape_ = shape;
  }

  static at::Tensor first_tensor(const c10::IValue& result) {
    if (result.isTensor()) {
      return result.toTensor();
    }
    if (result.isTuple()) {
      const auto& elements = result.toTupleRef().elements();
      if (!elements.empty() && elements[0].isTensor()) {
        return elements[0].toTensor();
      }
    }
    if (result.isTensorList()) {
      auto tensors = result.toTensorList();
      if (tensors.size() > 0) {
        return tensors.get(0);
      }
    }
    throw RunnerError("infer", std::string(kFrameworkName) + ": forward returned " +
                                   result.tagKind() + ", not a tensor");
  }

  std::optional<torch::jit::mobile::Module> module_;
  std::optional<torch::jit::mobile::Method> forward_;
  std::vector<int64_t> input_shape_;
  std::vector<float> input_buffer_;
  at::Tensor input_tensor_;
  std::optional<OpProfiler> profiler_;  // set by enable_profiling()
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<PyTorchMobileBackend>(); }

}  // namespace aiot
