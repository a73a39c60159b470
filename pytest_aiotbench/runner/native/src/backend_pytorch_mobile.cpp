// PyTorch Mobile: a .ptl module (saved with _save_for_lite_interpreter) run by the lite
// interpreter, on CPU, as the Python runner's PyTorchMobileBackend does: the given number of
// intra-op threads, inference mode around forward(*inputs), each input a tensor of the dtype
// the request gives (int64 ids stay int64: a module declares no input types).
//
// A lite module declares no output structure either: the outputs are what forward returns,
// flattened depth first: a tuple or list in order, a dict in its insertion order (TorchScript
// keeps it), each named as the host names the fp32 model's outputs (name_outputs below).
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

std::optional<DType> dtype_of(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kLong: return DType::kInt64;
    case at::kInt: return DType::kInt32;
    case at::kByte: return DType::kUInt8;
    case at::kBool: return DType::kBool;
    default: return std::nullopt;
  }
}

at::ScalarType scalar_type_of(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat16: return at::kHalf;
    case DType::kInt64: return at::kLong;
    case DType::kInt32: return at::kInt;
    case DType::kUInt8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

RunnerError not_a_tensor(const c10::IValue& value) {
  return RunnerError("infer", std::string(kFrameworkName) + ": forward returned " +
                                  value.tagKind() + " among its outputs, not a tensor");
}

// The tensors of forward's result, depth first (the order the header describes). Names
// nothing: it runs in every timed call.
void collect_tensors(const c10::IValue& value, std::vector<at::Tensor>& tensors) {
  if (value.isTensor()) {
    tensors.push_back(value.toTensor());
  } else if (value.isTuple()) {
    for (const c10::IValue& element : value.toTupleRef().elements()) {
      collect_tensors(element, tensors);
    }
  } else if (value.isList()) {
    for (const c10::IValue& element : value.toListRef()) collect_tensors(element, tensors);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) collect_tensors(entry.value(), tensors);
  } else {
    throw not_a_tensor(value);
  }
}

std::string key_text(const c10::IValue& key) {
  if (key.isString()) return key.toStringRef();
  if (key.isInt()) return std::to_string(key.toInt());
  return key.tagKind();
}

// The names of the tensors collect_tensors() finds, in its order, as the host names the
// fp32 model's outputs (networks/implementations.py, named_outputs): a lone tensor is
// "output", a sequence's element i "output_<i>", a dict's entry its key; below the top
// level, each part joins its parent's name with a dot ("output_1.boxes").
void name_outputs(const c10::IValue& value, const std::string& path,
                  std::vector<std::string>& names) {
  if (value.isTensor()) {
    names.push_back(path.empty() ? "output" : path);
    return;
  }
  auto below = [&](const std::string& part) { return path.empty() ? part : path + "." + part; };
  auto sequence = [&](c10::ArrayRef<c10::IValue> elements) {
    for (size_t i = 0; i < elements.size(); ++i) {
      name_outputs(elements[i], below("output_" + std::to_string(i)), names);
    }
  };
  if (value.isTuple()) {
    sequence(value.toTupleRef().elements());
  } else if (value.isList()) {
    sequence(value.toListRef());
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      name_outputs(entry.value(), below(key_text(entry.key())), names);
    }
  }
}

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
      // Where the module kept forward's schema, its arguments (self aside) say how many
      // inputs it takes. The request gives every one: a lite module's schema marks each
      // argument as defaulted (to None), so defaults cannot tell which may be left out.
      const auto& function = forward_->function();
      if (function.hasSchema()) {
        const size_t arguments = function.getSchema().arguments().size();
        input_count_ = arguments > 0 ? arguments - 1 : 0;
      }
    } catch (const std::exception& error) {
      throw RunnerError("load", std::string(kFrameworkName) + ": cannot load " + path + ": " +
                                    message_of(error));
    }
  }

  void infer(const std::vector<InputTensor>& inputs,
             std::vector<std::vector<float>>& outputs) override {
    if (!forward_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no module loaded");
    }
    if (input_count_ && inputs.size() != *input_count_) {
      throw input_count_error(inputs.size(), *input_count_);
    }
    try {
      if (inputs.size() != inputs_.size()) {
        inputs_.assign(inputs.size(), Input{});
        input_tensors_.assign(inputs.size(), at::Tensor());
      }
      for (size_t i = 0; i < inputs.size(); ++i) {
        const InputTensor& given = inputs[i];
        if (given.shape != inputs_[i].shape || given.dtype != inputs_[i].dtype) {
          prepare_input(i, given);
        }
        std::memcpy(inputs_[i].buffer.data(), given.data, given.bytes);
      }

      if (profiler_) profiler_->begin_inference();
      c10::InferenceMode inference_mode;
      // Method takes its stack by value; this vector is the one allocation per call.
      c10::IValue result =
          (*forward_)(std::vector<c10::IValue>(input_tensors_.begin(), input_tensors_.end()));
      result_tensors_.clear();  // keeps its capacity
      collect_tensors(result, result_tensors_);
      if (result.isTensor()) {
        if (output_names_.size() != 1) output_names_ = {"output"};
      } else if (output_names_.size() != result_tensors_.size()) {
        output_names_.clear();
        name_outputs(result, "", output_names_);
      }
      outputs.resize(result_tensors_.size());
      for (size_t i = 0; i < result_tensors_.size(); ++i) {
        copy_output(result_tensors_[i], outputs[i]);
      }
    } catch (const RunnerError&) {
      throw;
    } catch (const std::exception& error) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": " + message_of(error));
    }
  }

  std::vector<std::string> output_names() const override { return output_names_; }

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
  // Input `index`'s tensor is a view of a buffer this object owns, of the given dtype and
  // shape, so infer() only copies into it.
  void prepare_input(size_t index, const InputTensor& given) {
    for (int64_t extent : given.shape) {
      if (extent < 0) {
        throw RunnerError("inputs", std::string(kFrameworkName) + ": input '" + given.name +
                                        "' has a negative extent");
      }
    }
    Input& input = inputs_[index];
    input.buffer.assign(given.bytes, 0);
    input_tensors_[index] = at::from_blob(
        input.buffer.data(), given.shape,
        at::TensorOptions().dtype(scalar_type_of(given.dtype)));
    input.shape = given.shape;
    input.dtype = given.dtype;
  }

  // One output, flattened, as float: converted here where it is one of the protocol's
  // dtypes (no allocation), by torch otherwise.
  static void copy_output(const at::Tensor& tensor, std::vector<float>& output) {
    at::Tensor values = tensor.contiguous();
    std::optional<DType> dtype = dtype_of(values.scalar_type());
    if (!dtype) {
      values = values.to(at::kFloat);
      dtype = DType::kFloat32;
    }
    const auto count = static_cast<size_t>(values.numel());
    output.resize(count);
    to_float(*dtype, values.const_data_ptr(), count, output.data());
  }

  // One of forward's inputs: the buffer under its tensor, and what the tensor was made for.
  struct Input {
    std::vector<int64_t> shape;
    DType dtype = DType::kFloat32;
    std::vector<unsigned char> buffer;
  };

  std::optional<torch::jit::mobile::Module> module_;
  std::optional<torch::jit::mobile::Method> forward_;
  std::optional<size_t> input_count_;  // forward's arguments, where its schema was kept
  std::vector<Input> inputs_;
  std::vector<at::Tensor> input_tensors_;  // views of inputs_' buffers
  std::vector<at::Tensor> result_tensors_;  // the last result's outputs, flattened
  std::vector<std::string> output_names_;  // known after the first infer()
  std::optional<OpProfiler> profiler_;  // set by enable_profiling()
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<PyTorchMobileBackend>(); }

}  // namespace aiot
