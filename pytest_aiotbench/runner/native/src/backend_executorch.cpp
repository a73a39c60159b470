// ExecuTorch: a .pte program lowered to the XNNPACK delegate, run through the runtime API
// (Program / Method) the way the Python runner's ExecuTorchBackend runs it: the process-wide
// thread pool sized before the method loads, the file memory-mapped, full internal
// consistency verification. Everything a run needs (planned memory, allocators, the input
// tensors) is set up in load(); infer() only copies the inputs in, executes and copies out.
// Input i of the request feeds the method's input i, a tensor of the type the program
// declares (int64 ids stay int64); every output is answered, in the method's order, named
// "output" where there is one and output_<i> where there are several.
//
// Per-operator profiles come from the runtime's event tracer hooks (ProfileTracer below), the
// ones ETDumpGen implements, recorded directly instead of serialised to an ETDump.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <executorch/extension/data_loader/mmap_data_loader.h>
#include <executorch/extension/memory_allocator/malloc_memory_allocator.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/event_tracer.h>
#include <executorch/runtime/core/hierarchical_allocator.h>
#include <executorch/runtime/core/span.h>
#include <executorch/runtime/executor/memory_manager.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/method_meta.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/kernel/operator_registry.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

#include "backend.hpp"

// The thread pool XNNPACK and the CPU kernels share lives in libexecutorch_threadpool.so,
// but the wheel ships no header for it. These declarations name the two members this file
// calls, as that library exports them (non-virtual, so no layout is assumed).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  // Recreates the pool with this many threads; 0 keeps the current one.
  bool _unsafe_reset_threadpool(uint32_t thread_count);
  size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

#ifndef AIOT_EXECUTORCH_VERSION
#define AIOT_EXECUTORCH_VERSION "unknown"
#endif

namespace aiot {

const char* const kFrameworkName = "executorch";

namespace {

namespace et = ::executorch::runtime;
namespace etensor = ::executorch::runtime::etensor;
using ::executorch::extension::MallocMemoryAllocator;
using ::executorch::extension::MmapDataLoader;

// The name the XNNPACK delegate registers under (its static initializer in
// libexecutorch_backend_xnnpack.so) and the name lowered programs refer to.
constexpr const char* kXnnpackBackendName = "XnnpackBackend";

std::string describe(et::Error error) {
  return std::string(et::to_string(error)) + " (error " +
         std::to_string(static_cast<unsigned>(error)) + ")";
}

template <typename Sizes>
std::string shape_text(const Sizes& sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(sizes[i]);
  }
  return text + "]";
}

std::optional<DType> dtype_of(etensor::ScalarType type) {
  switch (type) {
    case etensor::ScalarType::Float: return DType::kFloat32;
    case etensor::ScalarType::Half: return DType::kFloat16;
    case etensor::ScalarType::Long: return DType::kInt64;
    case etensor::ScalarType::Int: return DType::kInt32;
    case etensor::ScalarType::Byte: return DType::kUInt8;
    case etensor::ScalarType::Bool: return DType::kBool;
    default: return std::nullopt;
  }
}

std::string scalar_type_text(etensor::ScalarType type) {
  return "scalar type " + std::to_string(static_cast<int>(type)) +
         " (ScalarType); the runner feeds and reads " + dtype_names();
}

// The name a report gives a delegate: XNNPACK as the other runners spell it, any other
// backend as it registers.
std::string delegate_display_name(const std::string& backend) {
  return backend == kXnnpackBackendName ? "XNNPACK" : backend;
}

// Records the runtime's profiling events as operator records.
//
// Per inference the runtime opens "Method::execute" and, inside it, one span per instruction:
// "OPERATOR_CALL" around a kernel, whose registration wrapper opens "native_call_<op>.<overload>"
// inside, or "DELEGATE_CALL" around a delegated subgraph, inside which the XNNPACK delegate
// logs one finished event per XNNPACK operator ("<kind> #<n>", timed by XNNPACK in
// microseconds). Each instruction becomes records once: an OPERATOR_CALL is one record of the
// kernel it wraps (its argument handling included); a DELEGATE_CALL is its delegate's
// operators plus the rest of the call (input/output setup), or one record where the delegate
// logged nothing. Method-level spans only wrap these and are never recorded.
class ProfileTracer final : public et::EventTracer {
 public:
  void set_delegate(std::string delegate) { delegate_ = std::move(delegate); }

  // Warm-up and loading events are seen (so a silent runtime is told apart from an idle one)
  // but recorded only between start() and stop().
  void start() {
    records_.clear();
    recording_ = true;
  }
  std::vector<OpRecord> stop() {
    recording_ = false;
    return std::move(records_);
  }
  size_t events_seen() const { return events_seen_; }

  void create_event_block(const char*) override {}

  et::EventTracerEntry start_profiling(const char* name, et::ChainID chain_id,
                                       et::DebugHandle debug_handle) override {
    // Instructions leave their chain and index on the tracer (set_chain_debug_handle) rather
    // than passing them, as ETDumpGen reads them too.
    return open(name, chain_id == et::kUnsetChainId ? chain_id_ : chain_id,
                debug_handle == et::kUnsetDebugHandle ? debug_handle_ : debug_handle, true);
  }

  void end_profiling(et::EventTracerEntry entry) override { close(entry); }

  et::EventTracerEntry start_profiling_delegate(const char* name,
                                                et::DelegateDebugIntId index) override {
    const std::string label = name ? name : "delegate event " + std::to_string(index);
    return open(label.c_str(), chain_id_, debug_handle_, false);
  }

  void end_profiling_delegate(et::EventTracerEntry entry, const void*, size_t) override {
    close(entry);
  }

  void log_profiling_delegate(const char* name, et::DelegateDebugIntId index,
                              et_timestamp_t start_time, et_timestamp_t end_time, const void*,
                              size_t) override {
    ++events_seen_;
    const double seconds = ticks_to_s(end_time >= start_time ? end_time - start_time : 0);
    Span* call = stack_.empty() ? nullptr : &stack_.back();
    if (call) {
      call->inner_s += seconds;
      call->has_inner = true;
    }
    if (!recording_) return;
    const std::string label = name ? name : "delegate event " + std::to_string(index);
    records_.push_back({delegate_op_type(label),
                        label + where(call ? call->chain : chain_id_,
                                      call ? call->handle : debug_handle_),
                        delegate_, seconds});
  }

  // Memory, values and intermediate outputs: not asked for (debug level kNoLogging).
  void track_allocation(et::AllocatorID, size_t) override {}
  et::AllocatorID track_allocator(const char*) override { return 0; }
  et::Result<bool> log_evalue(const et::EValue&, et::LoggedEValueType) override { return false; }
  et::Result<bool> log_intermediate_output_delegate(const char*, et::DelegateDebugIntId,
                                                    const executorch::aten::Tensor&) override {
    return false;
  }
  et::Result<bool> log_intermediate_output_delegate(
      const char*, et::DelegateDebugIntId,
      const et::ArrayRef<executorch::aten::Tensor>) override {
    return false;
  }
  et::Result<bool> log_intermediate_output_delegate(const char*, et::DelegateDebugIntId,
                                                    const int&) override {
    return false;
  }
  et::Result<bool> log_intermediate_output_delegate(const char*, et::DelegateDebugIntId,
                                                    const bool&) override {
    return false;
  }
  et::Result<bool> log_intermediate_output_delegate(const char*, et::DelegateDebugIntId,
                                                    const double&) override {
    return false;
  }
  void set_delegation_intermediate_output_filter(et::EventTracerFilterBase*) override {}

 private:
  struct Span {
    int64_t id;
    std::string name;
    et::ChainID chain;
    et::DebugHandle handle;
    et_timestamp_t start;
    bool runtime_event;    // from start_profiling, not a delegate's own span
    bool has_inner = false;
    double inner_s = 0;    // the time of the records made inside it
    std::string kernel;    // the native_call_ event inside an OPERATOR_CALL
  };

  et::EventTracerEntry open(const char* name, et::ChainID chain, et::DebugHandle handle,
                            bool runtime_event) {
    ++events_seen_;
    const et_timestamp_t now = et::pal_current_ticks();
    Span span;
    span.id = next_id_;
    span.name = name ? name : "";
    span.chain = chain;
    span.handle = handle;
    span.start = now;
    span.runtime_event = runtime_event;
    stack_.push_back(std::move(span));
    et::EventTracerEntry entry{};
    entry.event_id = next_id_++;
    entry.chain_id = chain;
    entry.debug_handle = handle;
    entry.start_time = now;
    entry.delegate_event_id_type =
        runtime_event ? et::DelegateDebugIdType::kNone : et::DelegateDebugIdType::kStr;
    return entry;
  }

  void close(const et::EventTracerEntry& entry) {
    const et_timestamp_t now = et::pal_current_ticks();
    // Spans nest; one left open by an error is dropped with whatever it enclosed.
    while (!stack_.empty() && stack_.back().id > entry.event_id) stack_.pop_back();
    if (stack_.empty() || stack_.back().id != entry.event_id) return;
    Span span = std::move(stack_.back());
    stack_.pop_back();
    Span* parent = stack_.empty() ? nullptr : &stack_.back();
    const double seconds = ticks_to_s(now >= span.start ? now - span.start : 0);
    const bool kernel = span.runtime_event && span.name.rfind(kKernelPrefix, 0) == 0;
    if (kernel && parent && parent->name == "OPERATOR_CALL") {
      parent->kernel = std::move(span.name);  // recorded with its instruction's whole span
      return;
    }
    // Recorded on its own below, so not again as part of what encloses it.
    if ((kernel || !span.runtime_event) && parent) {
      parent->inner_s += seconds;
      parent->has_inner = true;
    }
    if (!recording_) return;

    if (kernel) {
      record(kernel_op_type(span.name), span.name, span.chain, span.handle, kNoDelegate, seconds);
    } else if (span.runtime_event && span.name == "OPERATOR_CALL") {
      const std::string& label = span.kernel.empty() ? span.name : span.kernel;
      record(span.kernel.empty() ? "operator (kernel not named)" : kernel_op_type(span.kernel),
             label, span.chain, span.handle, kNoDelegate, seconds);
    } else if (span.runtime_event && span.name == "DELEGATE_CALL") {
      if (!span.has_inner) {
        record(delegate_ + " delegate call (no per-operator events)", span.name, span.chain,
               span.handle, delegate_, seconds);
      } else {
        // What the call spent outside the delegate's operators: its inputs, outputs and setup.
        record(delegate_ + " delegate call outside its operators", span.name, span.chain,
               span.handle, delegate_, std::max(0.0, seconds - span.inner_s));
      }
    } else if (!span.runtime_event) {
      // A delegate's own span (start/end_profiling_delegate), one of its operators.
      record(delegate_op_type(span.name), span.name, span.chain, span.handle, delegate_, seconds);
    }
    // Anything else (Method::execute, loading, ...) wraps the records above.
  }

  void record(std::string op_type, const std::string& label, et::ChainID chain,
              et::DebugHandle handle, const std::string& delegate, double seconds) {
    records_.push_back({std::move(op_type), label + where(chain, handle), delegate, seconds});
  }

  // Names repeat across instructions (XNNPACK numbers operators per delegated subgraph), so
  // the instruction a record came from makes its name unique within an inference.
  static std::string where(et::ChainID chain, et::DebugHandle handle) {
    std::string text = " @ instruction " + std::to_string(handle);
    if (chain > 0) text += " of chain " + std::to_string(chain);
    return text;
  }

  // "native_call_avg_pool2d.out" -> "aten::avg_pool2d" (the namespace from the kernel
  // registry, "aten" where not found; the out-variant overload dropped). Looked up once per
  // kernel: the registry holds hundreds.
  const std::string& kernel_op_type(const std::string& event) {
    auto known = kernel_op_types_.find(event);
    if (known != kernel_op_types_.end()) return known->second;
    std::string op = event.substr(std::strlen(kKernelPrefix));
    std::string qualified = "aten::" + op;
    for (const auto& kernel : et::get_registered_kernels()) {
      const char* name = kernel.name_;
      const char* sep = name ? std::strstr(name, "::") : nullptr;
      if (sep && op == sep + 2) {
        qualified = name;
        break;
      }
    }
    for (const char* suffix : {".out", "_out"}) {
      const size_t n = std::strlen(suffix);
      if (qualified.size() > n && qualified.compare(qualified.size() - n, n, suffix) == 0) {
        qualified.resize(qualified.size() - n);
        break;
      }
    }
    return kernel_op_types_[event] = qualified;
  }

  // "Convolution (NC, F32) IGEMM #3" -> "Convolution (NC, F32) IGEMM".
  static std::string delegate_op_type(const std::string& event) {
    const size_t mark = event.rfind(" #");
    if (mark == std::string::npos || mark + 2 == event.size()) return event;
    for (size_t i = mark + 2; i < event.size(); ++i) {
      if (event[i] < '0' || event[i] > '9') return event;
    }
    return event.substr(0, mark);
  }

  static double ticks_to_s(et_timestamp_t ticks) {
    static const et_tick_ratio_t ratio = et::pal_ticks_to_ns_multiplier();
    return static_cast<double>(ticks) * static_cast<double>(ratio.numerator) /
           static_cast<double>(ratio.denominator) * 1e-9;
  }

  static constexpr const char* kKernelPrefix = "native_call_";

  std::string delegate_ = "XNNPACK";
  std::vector<Span> stack_;
  std::vector<OpRecord> records_;
  std::unordered_map<std::string, std::string> kernel_op_types_;
  int64_t next_id_ = 0;
  size_t events_seen_ = 0;
  bool recording_ = false;
};

class ExecuTorchBackend final : public Backend {
 public:
  void load(const std::string& path, int threads) override {
    // Initialises the platform layer (logging, clock); required once per process.
    static const bool runtime_initialised = (et::runtime_init(), true);
    (void)runtime_initialised;
    unload();

    auto fail = [&path](const std::string& message) {
      return RunnerError("load", std::string(kFrameworkName) + ": cannot load " + path + ": " +
                                     message);
    };

    // Without the delegate registered, a lowered program fails to load with a message about
    // the program; say what is actually missing instead.
    if (et::get_backend_class(kXnnpackBackendName) == nullptr) {
      throw fail(std::string(kXnnpackBackendName) +
                 " is not registered: libexecutorch_backend_xnnpack.so was not linked or "
                 "not loaded");
    }

    // XNNPACK takes the process-wide pool when the delegate initialises, so size it before
    // the method loads (the Python runner calls _unsafe_reset_threadpool at the same point).
    auto* pool = ::executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr) {
      throw fail("the ExecuTorch thread pool could not be created");
    }
    if (threads > 0) {
      pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads));
    }
    thread_count_ = pool->get_thread_count();

    // Same loader and verification as the Python bindings' load_program(path).
    auto loader = MmapDataLoader::from(path.c_str(),
                                       MmapDataLoader::MlockConfig::UseMlockIgnoreErrors);
    if (!loader.ok()) {
      throw fail("cannot open the file: " + describe(loader.error()));
    }
    loader_ = std::make_unique<MmapDataLoader>(std::move(loader.get()));

    auto program = et::Program::load(loader_.get(), et::Program::Verification::InternalConsistency);
    if (!program.ok()) {
      throw fail("not a valid program: " + describe(program.error()));
    }
    program_ = std::make_unique<et::Program>(std::move(program.get()));

    const char* method_name = "forward";
    auto meta = program_->method_meta(method_name);
    if (!meta.ok()) {
      throw fail("no method 'forward': " + describe(meta.error()));
    }
    check_signature(meta.get(), fail);
    for (size_t i = 0; i < meta->num_backends(); ++i) {
      auto name = meta->get_backend_name(i);
      // A program names its delegate once per delegated subgraph; report each once.
      if (name.ok() && std::find(program_backends_.begin(), program_backends_.end(),
                                 name.get()) == program_backends_.end()) {
        program_backends_.emplace_back(name.get());
      }
    }

    // Planned memory: one buffer per plan entry, sized by the program, owned here for the
    // method's lifetime, so execute() never allocates activations.
    const size_t buffer_count = meta->num_memory_planned_buffers();
    planned_buffers_.resize(buffer_count);
    for (size_t i = 0; i < buffer_count; ++i) {
      auto size = meta->memory_planned_buffer_size(i);
      if (!size.ok()) {
        throw fail("bad memory plan: " + describe(size.error()));
      }
      planned_buffers_[i].resize(static_cast<size_t>(size.get()));
      planned_spans_.emplace_back(planned_buffers_[i].data(), planned_buffers_[i].size());
    }
    planned_memory_ = std::make_unique<et::HierarchicalAllocator>(
        et::Span<et::Span<uint8_t>>(planned_spans_.data(), planned_spans_.size()));
    memory_manager_ = std::make_unique<et::MemoryManager>(&method_allocator_, planned_memory_.get(),
                                                          &temp_allocator_);

    if (tracer_) {
      std::string delegates;
      for (const auto& name : program_backends_) {
        delegates += (delegates.empty() ? "" : "/") + delegate_display_name(name);
      }
      // A program lowered to one delegate (the runner's case) names it on every record; with
      // several, the events do not say which delegate a call went to.
      tracer_->set_delegate(delegates.empty() ? kNoDelegate : delegates);
    }
    auto method = program_->load_method(method_name, memory_manager_.get(), tracer_.get());
    if (!method.ok()) {
      std::string message = "cannot load method 'forward': " + describe(method.error());
      if (method.error() == et::Error::OperatorMissing) {
        message += "; an operator left outside the delegate has no kernel: link "
                   "libexecutorch_kernels_optimized.so (and libexecutorch_kernels_quantized.so "
                   "for quantized programs)";
      }
      throw fail(message);
    }
    method_ = std::make_unique<et::Method>(std::move(method.get()));
  }

  void infer(const std::vector<InputTensor>& inputs,
             std::vector<std::vector<float>>& outputs) override {
    if (!method_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no program loaded");
    }
    if (inputs.size() != inputs_.size()) throw input_count_error(inputs.size(), inputs_.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const InputTensor& given = inputs[i];
      Input& input = *inputs_[i];
      if (given.shape != input.sizes) {
        throw RunnerError("inputs", std::string(kFrameworkName) + ": input '" + given.name +
                                        "' of shape " + shape_text(given.shape) +
                                        " for a program whose input " + std::to_string(i) +
                                        " takes " + shape_text(input.sizes));
      }
      // The tensor only describes the caller's batch, or its conversion to the declared
      // type; set_input copies it into the method's planned input buffer (the one copy the
      // Python runner makes too) and never writes to it.
      void* data = const_cast<void*>(given.data);
      if (given.dtype != input.dtype) {
        copy_input(given, input.dtype, input.converted.data(), input.elements);
        data = input.converted.data();
      }
      input.tensor->set_data(data);
      check(method_->set_input(input.value, i), "set_input");
    }
    check(method_->execute(), "execute");

    outputs.resize(output_dtypes_.size());
    for (size_t i = 0; i < output_dtypes_.size(); ++i) {
      const et::EValue& result = method_->get_output(i);
      if (!result.isTensor()) {
        throw RunnerError("infer", std::string(kFrameworkName) + ": output " +
                                       std::to_string(i) + " is not a tensor");
      }
      const auto& tensor = result.toTensor();
      const std::optional<DType> dtype = dtype_of(tensor.scalar_type());
      if (!dtype) {
        throw RunnerError("infer", std::string(kFrameworkName) + ": output " +
                                       std::to_string(i) + " has " +
                                       scalar_type_text(tensor.scalar_type()));
      }
      const auto count = static_cast<size_t>(tensor.numel());
      outputs[i].resize(count);  // no reallocation after the first call
      to_float(*dtype, tensor.const_data_ptr(), count, outputs[i].data());
    }
  }

  std::vector<std::string> output_names() const override {
    if (output_dtypes_.size() == 1) return {"output"};
    std::vector<std::string> names;
    for (size_t i = 0; i < output_dtypes_.size(); ++i) {
      names.push_back("output_" + std::to_string(i));
    }
    return names;
  }

  std::string version() const override { return AIOT_EXECUTORCH_VERSION; }

  // The tracer has to be handed to load_method: the runtime reads it when the method loads.
  std::string enable_profiling() override {
    tracer_ = std::make_unique<ProfileTracer>();
    return "";
  }

  std::string profile_source() const override {
    return std::string("ExecuTorch ") + AIOT_EXECUTORCH_VERSION + " event tracer";
  }

  void start_profile() override {
    if (!tracer_) return;
    // Loading and the warm-up inferences have passed through the tracer by now; a runtime
    // built without its hooks calls it never.
    if (tracer_->events_seen() == 0) {
      throw RunnerError("profile", std::string(kFrameworkName) +
                                       ": the runtime reported no profiling event while loading "
                                       "and running the program: libexecutorch was built without "
                                       "ET_EVENT_TRACER_ENABLED");
    }
    tracer_->start();
  }

  std::vector<OpRecord> stop_profile() override {
    return tracer_ ? tracer_->stop() : std::vector<OpRecord>{};
  }

  std::vector<std::string> notes() const override {
    std::vector<std::string> notes;
    std::string registered;
    for (size_t i = 0; i < et::get_num_registered_backends(); ++i) {
      auto name = et::get_backend_name(i);
      if (name.ok()) {
        registered += (registered.empty() ? "" : ", ") + std::string(name.get());
      }
    }
    notes.push_back("registered delegates: " + (registered.empty() ? "none" : registered));
    if (!program_backends_.empty()) {
      std::string used;
      for (const auto& name : program_backends_) {
        used += (used.empty() ? "" : ", ") + name;
      }
      notes.push_back("program delegates to: " + used);
    }
    notes.push_back(std::to_string(et::get_registered_kernels().size()) +
                    " CPU operator kernels registered (for operators outside the delegate)");
    notes.push_back("thread pool: " + std::to_string(thread_count_) + " threads");
    return notes;
  }

 private:
  // The runner feeds tensors of the protocol's dtypes in C order and reads tensors of them:
  // refuse anything else at load time, and build each input tensor's description once.
  template <typename Fail>
  void check_signature(const et::MethodMeta& meta, const Fail& fail) {
    if (meta.num_inputs() == 0) throw fail("the program takes no input");
    if (meta.num_outputs() == 0) throw fail("the program has no output");
    inputs_.clear();
    for (size_t i = 0; i < meta.num_inputs(); ++i) {
      const std::string what = "its input " + std::to_string(i);
      auto info = meta.input_tensor_meta(i);
      const DType dtype = tensor_dtype(meta.input_tag(i), info, what, fail);
      // The caller's batch is contiguous in C order, so the program must want that order.
      const auto dim_order = info->dim_order();
      for (size_t d = 0; d < dim_order.size(); ++d) {
        if (dim_order[d] != d) throw fail(what + " is not in contiguous (NCHW) dimension order");
      }

      auto input = std::make_unique<Input>();
      input->dtype = dtype;
      const auto sizes = info->sizes();
      input->sizes.assign(sizes.begin(), sizes.end());
      input->tensor_sizes.assign(sizes.begin(), sizes.end());
      input->tensor_dim_order.assign(dim_order.begin(), dim_order.end());
      input->tensor_strides.assign(sizes.size(), 1);
      for (size_t d = sizes.size(); d-- > 1;) {
        input->tensor_strides[d - 1] = input->tensor_strides[d] * input->tensor_sizes[d];
      }
      input->elements = 1;
      for (auto extent : sizes) input->elements *= static_cast<size_t>(extent);
      input->converted.resize(input->elements * dtype_bytes(dtype));
      input->tensor = std::make_unique<etensor::TensorImpl>(
          info->scalar_type(), static_cast<ssize_t>(input->tensor_sizes.size()),
          input->tensor_sizes.data(), nullptr, input->tensor_dim_order.data(),
          input->tensor_strides.data());
      input->value = et::EValue(etensor::Tensor(input->tensor.get()));
      inputs_.push_back(std::move(input));
    }
    output_dtypes_.clear();
    for (size_t i = 0; i < meta.num_outputs(); ++i) {
      output_dtypes_.push_back(tensor_dtype(meta.output_tag(i), meta.output_tensor_meta(i),
                                            "its output " + std::to_string(i), fail));
    }
  }

  // The dtype of one of the method's values, which must be a tensor of a protocol dtype.
  template <typename Tag, typename Info, typename Fail>
  static DType tensor_dtype(const Tag& tag, const Info& info, const std::string& what,
                            const Fail& fail) {
    if (!tag.ok() || tag.get() != et::Tag::Tensor || !info.ok()) {
      throw fail(what + " is not a tensor");
    }
    const std::optional<DType> dtype = dtype_of(info->scalar_type());
    if (!dtype) throw fail(what + " has " + scalar_type_text(info->scalar_type()));
    return *dtype;
  }

  // Releases a previous program, the method first: it points into everything else.
  void unload() {
    method_.reset();
    memory_manager_.reset();
    planned_memory_.reset();
    planned_spans_.clear();
    planned_buffers_.clear();
    method_allocator_.reset();
    temp_allocator_.reset();
    program_.reset();
    loader_.reset();
    program_backends_.clear();
  }

  static void check(et::Error error, const char* step) {
    if (error != et::Error::Ok) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": " + step + " failed: " +
                                     describe(error));
    }
  }

  // Declared in dependency order: members are destroyed in reverse, so the method goes
  // before the memory it was planned into, and the program before the mapping it reads. The
  // tracer (set only for a profiling instance) outlives the method, which keeps a pointer to it.
  std::unique_ptr<ProfileTracer> tracer_;
  std::unique_ptr<MmapDataLoader> loader_;
  std::unique_ptr<et::Program> program_;
  MallocMemoryAllocator method_allocator_;  // the method's own structures, filled at load
  MallocMemoryAllocator temp_allocator_;    // kernel scratch, released after each operator
  std::vector<std::vector<uint8_t>> planned_buffers_;
  std::vector<et::Span<uint8_t>> planned_spans_;
  std::unique_ptr<et::HierarchicalAllocator> planned_memory_;
  std::unique_ptr<et::MemoryManager> memory_manager_;
  std::unique_ptr<et::Method> method_;

  // One of the method's inputs: the tensor description set_input reads, which points at
  // the caller's row or, where its dtype is not the declared one, at `converted`. Held by
  // pointer: the TensorImpl points into the vectors beside it.
  struct Input {
    DType dtype = DType::kFloat32;  // as the program declares it
    std::vector<int64_t> sizes;
    size_t elements = 0;
    std::vector<etensor::TensorImpl::SizesType> tensor_sizes;
    std::vector<etensor::TensorImpl::DimOrderType> tensor_dim_order;
    std::vector<etensor::TensorImpl::StridesType> tensor_strides;
    std::vector<unsigned char> converted;
    std::unique_ptr<etensor::TensorImpl> tensor;
    et::EValue value;
  };
  std::vector<std::unique_ptr<Input>> inputs_;
  std::vector<DType> output_dtypes_;  // as the program declares them (one per output)

  std::vector<std::string> program_backends_;
  size_t thread_count_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<ExecuTorchBackend>(); }

}  // namespace aiot
