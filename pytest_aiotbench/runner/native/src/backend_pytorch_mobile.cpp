// PyTorch Mobile: a .ptl module (saved with _save_for_lite_interpreter) run by the lite
// interpreter, on CPU, as the Python runner's PyTorchMobileBackend does: the given number of
// intra-op threads, inference mode around forward, the first output as float32.
#include "backend.hpp"

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/mobile/import.h>
#include <torch/csrc/jit/mobile/module.h>

#include <cstring>
#include <optional>

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
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<PyTorchMobileBackend>(); }

}  // namespace aiot
