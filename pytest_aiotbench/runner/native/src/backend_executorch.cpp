// ExecuTorch: a .pte program lowered to the XNNPACK delegate, run through the runtime API
// (Program / Method) the way the Python runner's ExecuTorchBackend runs it: the process-wide
// thread pool sized before the method loads, the file memory-mapped, full internal
// consistency verification. Everything a run needs (planned memory, allocators, the input
// tensor) is set up in load(); infer() only copies the input in, executes and copies out.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <executorch/extension/data_loader/mmap_data_loader.h>
#include <executorch/extension/memory_allocator/malloc_memory_allocator.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/core/evalue.h>
#include <executorch/runtime/core/hierarchical_allocator.h>
#include <executorch/runtime/core/span.h>
#include <executorch/runtime/executor/memory_manager.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/method_meta.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/kernel/operator_registry.h>
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

    auto method = program_->load_method(method_name, memory_manager_.get());
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

  void infer(const std::vector<int64_t>& shape, const float* input,
             std::vector<float>& output) override {
    if (!method_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no program loaded");
    }
    if (!std::equal(shape.begin(), shape.end(), input_sizes_.begin(), input_sizes_.end())) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": input of shape " +
                                     shape_text(shape) + " for a program that takes " +
                                     shape_text(input_sizes_));
    }
    // The tensor only describes the caller's batch; set_input copies it into the method's
    // planned input buffer (the one copy the Python runner makes too) and never writes to it.
    input_tensor_->set_data(const_cast<float*>(input));
    check(method_->set_input(input_value_, 0), "set_input");
    check(method_->execute(), "execute");

    const et::EValue& result = method_->get_output(0);
    if (!result.isTensor()) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": the first output is not a tensor");
    }
    const auto& tensor = result.toTensor();
    const float* data = tensor.const_data_ptr<float>();
    output.assign(data, data + tensor.numel());
  }

  std::string version() const override { return AIOT_EXECUTORCH_VERSION; }

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
  // The runner feeds one float32 NCHW batch and reads one float32 result: refuse anything
  // else at load time, and build the input tensor description once.
  template <typename Fail>
  void check_signature(const et::MethodMeta& meta, const Fail& fail) {
    if (meta.num_inputs() != 1) {
      throw fail("the program takes " + std::to_string(meta.num_inputs()) +
                 " inputs; the runner feeds exactly one");
    }
    auto input = meta.input_tensor_meta(0);
    if (!input.ok()) {
      throw fail("its input is not a tensor: " + describe(input.error()));
    }
    if (input->scalar_type() != etensor::ScalarType::Float) {
      throw fail("its input is not float32");
    }
    if (meta.num_outputs() < 1) {
      throw fail("the program has no output");
    }
    auto output = meta.output_tensor_meta(0);
    if (!output.ok() || output->scalar_type() != etensor::ScalarType::Float) {
      throw fail("its first output is not a float32 tensor");
    }
    // The caller's batch is contiguous in C order, so the program must want that order.
    const auto dim_order = input->dim_order();
    for (size_t i = 0; i < dim_order.size(); ++i) {
      if (dim_order[i] != i) {
        throw fail("its input is not in contiguous (NCHW) dimension order");
      }
    }

    const auto sizes = input->sizes();
    input_sizes_.assign(sizes.begin(), sizes.end());
    tensor_sizes_.assign(sizes.begin(), sizes.end());
    tensor_dim_order_.assign(dim_order.begin(), dim_order.end());
    tensor_strides_.assign(sizes.size(), 1);
    for (size_t i = sizes.size(); i-- > 1;) {
      tensor_strides_[i - 1] = tensor_strides_[i] * tensor_sizes_[i];
    }
    input_tensor_ = std::make_unique<etensor::TensorImpl>(
        etensor::ScalarType::Float, static_cast<ssize_t>(tensor_sizes_.size()),
        tensor_sizes_.data(), nullptr, tensor_dim_order_.data(), tensor_strides_.data());
    input_value_ = et::EValue(etensor::Tensor(input_tensor_.get()));
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
  // before the memory it was planned into, and the program before the mapping it reads.
  std::unique_ptr<MmapDataLoader> loader_;
  std::unique_ptr<et::Program> program_;
  MallocMemoryAllocator method_allocator_;  // the method's own structures, filled at load
  MallocMemoryAllocator temp_allocator_;    // kernel scratch, released after each operator
  std::vector<std::vector<uint8_t>> planned_buffers_;
  std::vector<et::Span<uint8_t>> planned_spans_;
  std::unique_ptr<et::HierarchicalAllocator> planned_memory_;
  std::unique_ptr<et::MemoryManager> memory_manager_;
  std::unique_ptr<et::Method> method_;

  std::vector<int64_t> input_sizes_;
  std::vector<etensor::TensorImpl::SizesType> tensor_sizes_;
  std::vector<etensor::TensorImpl::DimOrderType> tensor_dim_order_;
  std::vector<etensor::TensorImpl::StridesType> tensor_strides_;
  std::unique_ptr<etensor::TensorImpl> input_tensor_;
  et::EValue input_value_;

  std::vector<std::string> program_backends_;
  size_t thread_count_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<ExecuTorchBackend>(); }

}  // namespace aiot
