// TFLite (LiteRT): a .tflite model run through LiteRT's C API (libLiteRt.so) as a
// CompiledModel on the CPU accelerator, which is XNNPACK, with the given thread count: the
// same kernels and threading as the Python runner's Interpreter(num_threads=...), whose
// default op resolver applies XNNPACK too.
//
// No LiteRT headers are used: the wheel ships none and the Android AAR's are optional, so the
// few calls the runner needs are declared below from LiteRT's public C API
// (litert/c/*.h, google-ai-edge/LiteRT at the 2.3.0 version bump). Every declared function
// is exported by libLiteRt.so 2.3.0; the structs carry the ABI asserts LiteRT documents.
#include "backend.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace aiot {

const char* const kFrameworkName = "tflite";

namespace litert_c {

// Opaque handles (litert_common.h).
struct EnvironmentT;
struct ModelT;
struct SignatureT;
struct SubgraphT;
struct TensorT;
struct OptionsT;
struct OpaqueOptionsT;
struct CompiledModelT;
struct TensorBufferT;
struct TensorBufferRequirementsT;
using Environment = EnvironmentT*;
using Model = ModelT*;
using Signature = SignatureT*;
using Subgraph = SubgraphT*;
using Tensor = TensorT*;
using Options = OptionsT*;
using OpaqueOptions = OpaqueOptionsT*;
using CompiledModel = CompiledModelT*;
using TensorBuffer = TensorBufferT*;
using TensorBufferRequirements = TensorBufferRequirementsT*;
using ParamIndex = size_t;

// LiteRtStatus: a C enum, so int-sized. Only the values the runner names.
enum Status : int {
  kStatusOk = 0,
  kStatusErrorNotFound = 6,
};

// LiteRtElementType (the TfLiteType values).
enum ElementType : int { kElementTypeFloat32 = 1 };
// LiteRtTensorTypeId.
enum TensorTypeId : int { kRankedTensorType = 0 };
// LiteRtHwAccelerators bit.
constexpr int kHwAcceleratorCpu = 1;
// LiteRtTensorBufferLockMode.
enum LockMode : int { kLockRead = 0, kLockWrite = 1 };
// LiteRtEnvOptionTag kLiteRtEnvOptionTagAutoRegisterAccelerators, LiteRtAnyType int.
constexpr int kEnvOptionAutoRegisterAccelerators = 24;
constexpr int kAnyTypeInt = 2;

constexpr int kMaxRank = 8;  // LITERT_TENSOR_MAX_RANK

// LiteRtLayout.
struct Layout {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[kMaxRank];
  uint32_t strides[kMaxRank];
};
// LiteRtRankedTensorType.
struct RankedTensorType {
  ElementType element_type;
  Layout layout;
};
// LiteRtAny.
struct Any {
  int type;
  union {
    bool bool_value;
    int64_t int_value;
    double real_value;
    const char* str_value;
    const void* ptr_value;
  };
};
// LiteRtEnvOption.
struct EnvOption {
  int tag;
  Any value;
};

#if defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8
static_assert(sizeof(Layout) == 68, "LiteRtLayout ABI");
static_assert(sizeof(RankedTensorType) == 72, "LiteRtRankedTensorType ABI");
static_assert(sizeof(Any) == 16, "LiteRtAny ABI");
static_assert(sizeof(EnvOption) == 24, "LiteRtEnvOption ABI");
#endif

extern "C" {
// litert_environment.h
Status LiteRtCreateEnvironment(int num_options, const EnvOption* options,
                               Environment* environment);
void LiteRtDestroyEnvironment(Environment environment);
// litert_model.h
Status LiteRtCreateModelFromFile(Environment environment, const char* filename, Model* model);
void LiteRtDestroyModel(Model model);
Status LiteRtGetNumModelSignatures(Model model, ParamIndex* num_signatures);
Status LiteRtGetModelSignature(Model model, ParamIndex signature_index, Signature* signature);
Status LiteRtGetSignatureSubgraph(Signature signature, Subgraph* subgraph);
Status LiteRtGetNumSignatureInputs(Signature signature, ParamIndex* num_inputs);
Status LiteRtGetNumSignatureOutputs(Signature signature, ParamIndex* num_outputs);
Status LiteRtGetSignatureInputTensorByIndex(Signature signature, ParamIndex input_index,
                                            Tensor* tensor);
Status LiteRtGetSignatureOutputTensorByIndex(Signature signature, ParamIndex output_index,
                                             Tensor* tensor);
Status LiteRtGetSubgraphOutput(Subgraph subgraph, ParamIndex output_index, Tensor* output);
Status LiteRtGetTensorTypeId(Tensor tensor, TensorTypeId* type_id);
Status LiteRtGetRankedTensorType(Tensor tensor, RankedTensorType* ranked_tensor_type);
// litert_options.h, litert_opaque_options.h
Status LiteRtCreateOptions(Options* options);
void LiteRtDestroyOptions(Options options);
Status LiteRtSetOptionsHardwareAccelerators(Options options, int hardware_accelerators);
Status LiteRtAddOpaqueOptions(Options options, OpaqueOptions opaque_options);
Status LiteRtCreateOpaqueOptions(const char* payload_identifier, void* payload_data,
                                 void (*payload_destructor)(void* payload_data),
                                 OpaqueOptions* options);
void LiteRtDestroyOpaqueOptions(OpaqueOptions options);
// litert_compiled_model.h
Status LiteRtCreateCompiledModel(Environment environment, Model model, Options options,
                                 CompiledModel* compiled_model);
void LiteRtDestroyCompiledModel(CompiledModel compiled_model);
Status LiteRtGetCompiledModelInputBufferRequirements(CompiledModel compiled_model,
                                                     ParamIndex signature_index,
                                                     ParamIndex input_index,
                                                     TensorBufferRequirements* requirements);
Status LiteRtGetCompiledModelOutputBufferRequirements(CompiledModel compiled_model,
                                                      ParamIndex signature_index,
                                                      ParamIndex output_index,
                                                      TensorBufferRequirements* requirements);
Status LiteRtRunCompiledModel(CompiledModel compiled_model, ParamIndex signature_index,
                              size_t num_input_buffers, TensorBuffer* input_buffers,
                              size_t num_output_buffers, TensorBuffer* output_buffers);
Status LiteRtCompiledModelIsFullyAccelerated(CompiledModel compiled_model,
                                             bool* fully_accelerated);
// litert_tensor_buffer.h
Status LiteRtCreateManagedTensorBufferFromRequirements(Environment environment,
                                                       const RankedTensorType* tensor_type,
                                                       TensorBufferRequirements requirements,
                                                       TensorBuffer* buffer);
Status LiteRtGetTensorBufferPackedSize(TensorBuffer buffer, size_t* size);
Status LiteRtLockTensorBuffer(TensorBuffer buffer, void** host_memory, LockMode lock_mode);
Status LiteRtUnlockTensorBuffer(TensorBuffer buffer);
void LiteRtDestroyTensorBuffer(TensorBuffer buffer);
}  // extern "C"

}  // namespace litert_c

namespace {

namespace lc = litert_c;

// LiteRtGetStatusString is not exported by libLiteRt.so, hence this copy of the names.
const char* status_name(lc::Status status) {
  switch (static_cast<int>(status)) {
    case 0: return "kLiteRtStatusOk";
    case 1: return "kLiteRtStatusErrorInvalidArgument";
    case 2: return "kLiteRtStatusErrorMemoryAllocationFailure";
    case 3: return "kLiteRtStatusErrorRuntimeFailure";
    case 4: return "kLiteRtStatusErrorMissingInputTensor";
    case 5: return "kLiteRtStatusErrorUnsupported";
    case 6: return "kLiteRtStatusErrorNotFound";
    case 7: return "kLiteRtStatusErrorTimeoutExpired";
    case 8: return "kLiteRtStatusErrorWrongVersion";
    case 9: return "kLiteRtStatusErrorUnknown";
    case 10: return "kLiteRtStatusErrorAlreadyExists";
    case 100: return "kLiteRtStatusCancelled";
    case 500: return "kLiteRtStatusErrorFileIO";
    case 501: return "kLiteRtStatusErrorInvalidFlatbuffer";
    case 502: return "kLiteRtStatusErrorDynamicLoading";
    case 503: return "kLiteRtStatusErrorSerialization";
    case 504: return "kLiteRtStatusErrorCompilation";
    case 1000: return "kLiteRtStatusErrorIndexOOB";
    case 1001: return "kLiteRtStatusErrorInvalidIrType";
    case 1002: return "kLiteRtStatusErrorInvalidGraphInvariant";
    case 1003: return "kLiteRtStatusErrorGraphModification";
    case 4000: return "kLiteRtStatusErrorUnsupportedRuntimeVersion";
    default: return "LiteRtStatus";
  }
}

// The C API returns a bare status; LiteRT prints its own explanation to stderr.
std::string describe(const char* call, lc::Status status) {
  return std::string(call) + " failed: " + status_name(status) + " (" +
         std::to_string(static_cast<int>(status)) + "); LiteRT's log on stderr has the details";
}

template <typename Handle, void (*Destroy)(Handle)>
struct Destroyer {
  void operator()(Handle handle) const {
    if (handle != nullptr) Destroy(handle);
  }
};
template <typename Handle, void (*Destroy)(Handle)>
using Owned = std::unique_ptr<std::remove_pointer_t<Handle>, Destroyer<Handle, Destroy>>;

using OwnedEnvironment = Owned<lc::Environment, lc::LiteRtDestroyEnvironment>;
using OwnedModel = Owned<lc::Model, lc::LiteRtDestroyModel>;
using OwnedOptions = Owned<lc::Options, lc::LiteRtDestroyOptions>;
using OwnedOpaqueOptions = Owned<lc::OpaqueOptions, lc::LiteRtDestroyOpaqueOptions>;
using OwnedCompiledModel = Owned<lc::CompiledModel, lc::LiteRtDestroyCompiledModel>;
using OwnedTensorBuffer = Owned<lc::TensorBuffer, lc::LiteRtDestroyTensorBuffer>;

size_t element_count(const lc::Layout& layout) {
  size_t count = 1;
  for (unsigned int i = 0; i < layout.rank; ++i) {
    if (layout.dimensions[i] < 0) return 0;  // dynamic
    count *= static_cast<size_t>(layout.dimensions[i]);
  }
  return count;
}

std::string shape_text(const lc::Layout& layout) {
  std::string text = "[";
  for (unsigned int i = 0; i < layout.rank; ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(layout.dimensions[i]);
  }
  return text + "]";
}

class TfliteBackend : public Backend {
 public:
  ~TfliteBackend() override {
    // Buffers and the compiled model before the model, the model before the environment.
    input_buffers_.clear();
    output_buffers_.clear();
    owned_buffers_.clear();
    compiled_model_.reset();
    options_.reset();
    model_.reset();
    environment_.reset();
  }

  void load(const std::string& path, int threads) override {
    const std::string where = std::string(kFrameworkName) + ": cannot load " + path + ": ";
    auto check = [&](const char* call, lc::Status status) {
      if (status != lc::kStatusOk) throw RunnerError("load", where + describe(call, status));
    };
    threads_ = threads;

    // Only the CPU accelerator: the default would also try to load the GPU and NPU
    // accelerator libraries, which the Python Interpreter never touches.
    lc::EnvOption cpu_only{};
    cpu_only.tag = lc::kEnvOptionAutoRegisterAccelerators;
    cpu_only.value.type = lc::kAnyTypeInt;
    cpu_only.value.int_value = lc::kHwAcceleratorCpu;
    lc::Environment environment = nullptr;
    check("LiteRtCreateEnvironment", lc::LiteRtCreateEnvironment(1, &cpu_only, &environment));
    environment_.reset(environment);

    // LiteRT answers kLiteRtStatusErrorFileIO both for a missing file and for one that is
    // no model; opening it first tells the two apart.
    if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
      std::fclose(file);
    } else {
      throw RunnerError("load", where + std::strerror(errno));
    }
    lc::Model model = nullptr;
    check("LiteRtCreateModelFromFile",
          lc::LiteRtCreateModelFromFile(environment, path.c_str(), &model));
    model_.reset(model);

    // The thread count goes in the CPU accelerator's options: a TOML text under the
    // identifier "xnnpack" (what LiteRT's client-side LrtCpuOptions, not part of
    // libLiteRt.so, would serialise).
    lc::Options options = nullptr;
    check("LiteRtCreateOptions", lc::LiteRtCreateOptions(&options));
    options_.reset(options);
    check("LiteRtSetOptionsHardwareAccelerators",
          lc::LiteRtSetOptionsHardwareAccelerators(options, lc::kHwAcceleratorCpu));
    const std::string cpu_toml = "num_threads = " + std::to_string(threads) + "\n";
    char* payload = static_cast<char*>(std::malloc(cpu_toml.size() + 1));
    if (payload == nullptr) throw RunnerError("load", where + "out of memory");
    std::memcpy(payload, cpu_toml.c_str(), cpu_toml.size() + 1);
    lc::OpaqueOptions cpu_options = nullptr;
    const lc::Status created =
        lc::LiteRtCreateOpaqueOptions("xnnpack", payload, std::free, &cpu_options);
    if (created != lc::kStatusOk) std::free(payload);
    check("LiteRtCreateOpaqueOptions", created);
    OwnedOpaqueOptions owned_cpu_options(cpu_options);
    check("LiteRtAddOpaqueOptions", lc::LiteRtAddOpaqueOptions(options, cpu_options));
    owned_cpu_options.release();  // now owned by options

    lc::CompiledModel compiled_model = nullptr;
    check("LiteRtCreateCompiledModel",
          lc::LiteRtCreateCompiledModel(environment, model, options, &compiled_model));
    compiled_model_.reset(compiled_model);

    // Signature 0 is the model's entry point (serving_default for converted models).
    lc::ParamIndex signature_count = 0;
    check("LiteRtGetNumModelSignatures", lc::LiteRtGetNumModelSignatures(model, &signature_count));
    if (signature_count == 0) throw RunnerError("load", where + "the model has no signature");
    lc::Signature signature = nullptr;
    check("LiteRtGetModelSignature", lc::LiteRtGetModelSignature(model, 0, &signature));
    lc::ParamIndex input_count = 0;
    lc::ParamIndex output_count = 0;
    check("LiteRtGetNumSignatureInputs", lc::LiteRtGetNumSignatureInputs(signature, &input_count));
    check("LiteRtGetNumSignatureOutputs",
          lc::LiteRtGetNumSignatureOutputs(signature, &output_count));
    if (input_count != 1 || output_count == 0) {
      throw RunnerError("load", where + "expected one input and at least one output, found " +
                                    std::to_string(input_count) + " and " +
                                    std::to_string(output_count));
    }

    // Run needs a buffer for every input and output; all are made here, once.
    input_elements_ = make_buffer(signature, /*is_input=*/true, 0, where);
    for (lc::ParamIndex i = 0; i < output_count; ++i) {
      make_buffer(signature, /*is_input=*/false, i, where);
    }
    first_output_ = first_output_index(signature, output_count);
    output_elements_ = output_element_counts_[first_output_];

    bool fully_accelerated = false;
    if (lc::LiteRtCompiledModelIsFullyAccelerated(compiled_model, &fully_accelerated) ==
        lc::kStatusOk) {
      fully_accelerated_ = fully_accelerated ? 1 : 0;
    }
  }

  void infer(const std::vector<int64_t>& shape, const float* input,
             std::vector<float>& output) override {
    if (!compiled_model_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no model loaded");
    }
    size_t count = 1;
    for (int64_t dimension : shape) count *= static_cast<size_t>(dimension);
    if (count != input_elements_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": the input has " +
                                     std::to_string(count) + " values, the model takes " +
                                     std::to_string(input_elements_));
    }
    auto check = [](const char* call, lc::Status status) {
      if (status != lc::kStatusOk) {
        throw RunnerError("infer", std::string(kFrameworkName) + ": " + describe(call, status));
      }
    };

    void* host = nullptr;
    check("LiteRtLockTensorBuffer", lc::LiteRtLockTensorBuffer(input_buffers_[0], &host,
                                                                lc::kLockWrite));
    std::memcpy(host, input, count * sizeof(float));
    check("LiteRtUnlockTensorBuffer", lc::LiteRtUnlockTensorBuffer(input_buffers_[0]));

    check("LiteRtRunCompiledModel",
          lc::LiteRtRunCompiledModel(compiled_model_.get(), 0, input_buffers_.size(),
                                     input_buffers_.data(), output_buffers_.size(),
                                     output_buffers_.data()));

    lc::TensorBuffer result = output_buffers_[first_output_];
    check("LiteRtLockTensorBuffer", lc::LiteRtLockTensorBuffer(result, &host, lc::kLockRead));
    const auto* values = static_cast<const float*>(host);
    output.assign(values, values + output_elements_);  // no reallocation after the first call
    check("LiteRtUnlockTensorBuffer", lc::LiteRtUnlockTensorBuffer(result));
  }

  std::string version() const override {
    // libLiteRt.so exports no runtime version call; this is the version it was built against.
#ifdef AIOT_TFLITE_DECLARED_VERSION
    return std::string(AIOT_TFLITE_DECLARED_VERSION) + " (declared)";
#else
    return "unknown (AIOT_TFLITE_VERSION not set at build)";
#endif
  }

  std::vector<std::string> notes() const override {
    std::vector<std::string> notes{
        "LiteRT CompiledModel C API, CPU accelerator (XNNPACK), num_threads=" +
        std::to_string(threads_)};
    if (fully_accelerated_ >= 0) {
      notes.push_back(fully_accelerated_ ? "all ops delegated to XNNPACK"
                                         : "some ops run on LiteRT's built-in CPU kernels");
    }
    return notes;
  }

 private:
  // Makes the managed (host memory on CPU) buffer the compiled model asks for, float32 only.
  // Returns its element count.
  size_t make_buffer(lc::Signature signature, bool is_input, lc::ParamIndex index,
                     const std::string& where) {
    const std::string what = std::string(is_input ? "input " : "output ") + std::to_string(index);
    auto check = [&](const char* call, lc::Status status) {
      if (status != lc::kStatusOk) {
        throw RunnerError("load", where + what + ": " + describe(call, status));
      }
    };
    lc::Tensor tensor = nullptr;
    check("LiteRtGetSignatureTensorByIndex",
          is_input ? lc::LiteRtGetSignatureInputTensorByIndex(signature, index, &tensor)
                   : lc::LiteRtGetSignatureOutputTensorByIndex(signature, index, &tensor));
    lc::TensorTypeId type_id{};
    check("LiteRtGetTensorTypeId", lc::LiteRtGetTensorTypeId(tensor, &type_id));
    if (type_id != lc::kRankedTensorType) {
      throw RunnerError("load", where + what + " has no fixed rank");
    }
    lc::RankedTensorType type{};
    check("LiteRtGetRankedTensorType", lc::LiteRtGetRankedTensorType(tensor, &type));
    if (type.element_type != lc::kElementTypeFloat32) {
      throw RunnerError("load", where + what + " has element type " +
                                    std::to_string(static_cast<int>(type.element_type)) +
                                    " (TfLiteType); the runner feeds and reads float32 only");
    }
    const size_t elements = element_count(type.layout);
    if (elements == 0) {
      throw RunnerError("load", where + what + " has a dynamic or empty shape " +
                                    shape_text(type.layout));
    }

    lc::TensorBufferRequirements requirements = nullptr;  // owned by the compiled model
    check("LiteRtGetCompiledModelBufferRequirements",
          is_input ? lc::LiteRtGetCompiledModelInputBufferRequirements(
                         compiled_model_.get(), 0, index, &requirements)
                   : lc::LiteRtGetCompiledModelOutputBufferRequirements(
                         compiled_model_.get(), 0, index, &requirements));
    lc::TensorBuffer buffer = nullptr;
    check("LiteRtCreateManagedTensorBufferFromRequirements",
          lc::LiteRtCreateManagedTensorBufferFromRequirements(environment_.get(), &type,
                                                              requirements, &buffer));
    owned_buffers_.emplace_back(buffer);
    size_t packed_size = 0;
    check("LiteRtGetTensorBufferPackedSize", lc::LiteRtGetTensorBufferPackedSize(buffer, &packed_size));
    if (packed_size < elements * sizeof(float)) {
      throw RunnerError("load", where + what + ": buffer of " + std::to_string(packed_size) +
                                    " bytes for " + std::to_string(elements) + " floats");
    }
    (is_input ? input_buffers_ : output_buffers_).push_back(buffer);
    if (!is_input) output_element_counts_.push_back(elements);
    return elements;
  }

  // The Python runner reads get_output_details()[0], the subgraph's first output; the
  // signature may list its outputs in another order.
  lc::ParamIndex first_output_index(lc::Signature signature, lc::ParamIndex output_count) {
    lc::Subgraph subgraph = nullptr;
    lc::Tensor first = nullptr;
    if (lc::LiteRtGetSignatureSubgraph(signature, &subgraph) != lc::kStatusOk ||
        lc::LiteRtGetSubgraphOutput(subgraph, 0, &first) != lc::kStatusOk) {
      return 0;
    }
    for (lc::ParamIndex i = 0; i < output_count; ++i) {
      lc::Tensor tensor = nullptr;
      if (lc::LiteRtGetSignatureOutputTensorByIndex(signature, i, &tensor) == lc::kStatusOk &&
          tensor == first) {
        return i;
      }
    }
    return 0;
  }

  OwnedEnvironment environment_;
  OwnedModel model_;
  OwnedOptions options_;  // kept for the compiled model's lifetime, which may refer to it
  OwnedCompiledModel compiled_model_;
  std::vector<OwnedTensorBuffer> owned_buffers_;
  std::vector<lc::TensorBuffer> input_buffers_;
  std::vector<lc::TensorBuffer> output_buffers_;
  std::vector<size_t> output_element_counts_;
  size_t input_elements_ = 0;
  size_t output_elements_ = 0;
  lc::ParamIndex first_output_ = 0;
  int threads_ = 0;
  int fully_accelerated_ = -1;  // -1: not known
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<TfliteBackend>(); }

}  // namespace aiot
