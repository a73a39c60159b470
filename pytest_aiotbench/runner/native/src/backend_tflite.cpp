// TFLite (LiteRT): a .tflite model run through LiteRT's C API (libLiteRt.so) as a
// CompiledModel on the CPU accelerator, which is XNNPACK, with the given thread count: the
// same kernels and threading as the Python runner's Interpreter(num_threads=...), whose
// default op resolver applies XNNPACK too.
//
// Inputs and outputs are taken in the graph's order (the interpreter's input and output
// tensors, as get_input_details() and get_output_details() list them), not the signature's,
// which sorts them by name: input i of the request feeds the graph's input i, and the
// outputs are answered as the graph lists them, named as its tensors are.
//
// No LiteRT headers are used: the wheel ships none and the Android AAR's are optional, so the
// few calls the runner needs are declared below from LiteRT's public C API
// (litert/c/*.h, google-ai-edge/LiteRT at the 2.3.0 version bump). Every declared function
// is exported by libLiteRt.so 2.3.0; the structs carry the ABI asserts LiteRT documents.
// The profiler calls (--aiot-profile) are looked up at run time instead of linked, so a
// libLiteRt.so without them still times: only its profile is then unavailable.
#include "backend.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <type_traits>
#include <unordered_map>

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
struct ProfilerT;
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
using Profiler = ProfilerT*;
using ParamIndex = size_t;

// LiteRtStatus: a C enum, so int-sized. Only the values the runner names.
enum Status : int {
  kStatusOk = 0,
  kStatusErrorNotFound = 6,
};

// LiteRtElementType (the TfLiteType values): the ones the protocol's dtypes map onto.
enum ElementType : int {
  kElementTypeFloat32 = 1,
  kElementTypeInt32 = 2,
  kElementTypeUInt8 = 3,
  kElementTypeInt64 = 4,
  kElementTypeBool = 6,
  kElementTypeFloat16 = 10,
};
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

// LiteRtProfilerEventType (litert_profiler_event.h, tflite::Profiler::EventType's values).
// Only the operator kinds the runner reads.
enum ProfilerEventType : int {
  kOperatorInvokeEvent = 1 << 1,          // an op of the interpreter's execution plan
  kDelegateOperatorInvokeEvent = 1 << 2,  // an op inside a delegate (scoped)
  kDelegateProfiledOperatorInvokeEvent = 1 << 3,  // the same, added with its time (XNNPACK)
};
// LiteRtMemoryUsage.
struct MemoryUsage {
  size_t total_allocated_bytes;
  size_t in_use_allocated_bytes;
  size_t private_footprint_bytes;
};
// ProfiledEventSource: a C enum, not read (LiteRT 2.3.0 files XNNPACK's events as LITERT).
using ProfiledEventSource = int;
// ProfiledEventData. Times in microseconds; for an OPERATOR_INVOKE_EVENT metadata1 is the node
// index and metadata2 the subgraph index; events added with a time (XNNPACK's) start at 0.
struct ProfiledEventData {
  const char* tag;  // owned by the profiler
  ProfilerEventType event_type;
  uint64_t start_timestamp_us;
  uint64_t elapsed_time_us;
  MemoryUsage begin_mem_usage;
  MemoryUsage end_mem_usage;
  uint64_t event_metadata1;
  uint64_t event_metadata2;
  ProfiledEventSource event_source;
};

#if defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8
static_assert(sizeof(ProfiledEventData) == 104, "ProfiledEventData ABI");
static_assert(offsetof(ProfiledEventData, start_timestamp_us) == 16, "ProfiledEventData ABI");
static_assert(offsetof(ProfiledEventData, event_metadata1) == 80, "ProfiledEventData ABI");
static_assert(offsetof(ProfiledEventData, event_source) == 96, "ProfiledEventData ABI");
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
Status LiteRtGetNumSubgraphInputs(Subgraph subgraph, ParamIndex* num_inputs);
Status LiteRtGetSubgraphInput(Subgraph subgraph, ParamIndex input_index, Tensor* input);
Status LiteRtGetNumSubgraphOutputs(Subgraph subgraph, ParamIndex* num_outputs);
Status LiteRtGetSubgraphOutput(Subgraph subgraph, ParamIndex output_index, Tensor* output);
Status LiteRtGetTensorName(Tensor tensor, const char** name);
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
// litert_compiled_model.h, litert_profiler.h: never called directly (no link-time
// reference), only their types, for the pointers dlsym finds (ProfilerApi).
Status LiteRtCompiledModelGetProfiler(CompiledModel compiled_model, Profiler* profiler);
Status LiteRtStartProfiler(Profiler profiler);
Status LiteRtStopProfiler(Profiler profiler);
Status LiteRtResetProfiler(Profiler profiler);
Status LiteRtGetNumProfilerEvents(Profiler profiler, int* num_events);
Status LiteRtGetProfilerEvents(Profiler profiler, int num_events, ProfiledEventData* events);
}  // extern "C"

// The opaque options LrtRuntimeOptions (litert/c/options/litert_runtime_options.cc, not part
// of libLiteRt.so) serialises: a TOML text under this identifier.
constexpr const char* kRuntimeOptionsIdentifier = "runtime_options_string";

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

std::optional<DType> dtype_of(lc::ElementType type) {
  switch (type) {
    case lc::kElementTypeFloat32: return DType::kFloat32;
    case lc::kElementTypeFloat16: return DType::kFloat16;
    case lc::kElementTypeInt64: return DType::kInt64;
    case lc::kElementTypeInt32: return DType::kInt32;
    case lc::kElementTypeUInt8: return DType::kUInt8;
    case lc::kElementTypeBool: return DType::kBool;
    default: return std::nullopt;
  }
}

std::string shape_text(const lc::Layout& layout) {
  std::string text = "[";
  for (unsigned int i = 0; i < layout.rank; ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(layout.dimensions[i]);
  }
  return text + "]";
}

// Adds a TOML text as the opaque options `identifier` (what LiteRT's client-side option
// classes serialise).
void add_toml_options(lc::Options options, const char* identifier, const std::string& toml,
                      const std::string& where) {
  auto check = [&](const char* call, lc::Status status) {
    if (status != lc::kStatusOk) throw RunnerError("load", where + describe(call, status));
  };
  char* payload = static_cast<char*>(std::malloc(toml.size() + 1));
  if (payload == nullptr) throw RunnerError("load", where + "out of memory");
  std::memcpy(payload, toml.c_str(), toml.size() + 1);
  lc::OpaqueOptions opaque = nullptr;
  const lc::Status created = lc::LiteRtCreateOpaqueOptions(identifier, payload, std::free, &opaque);
  if (created != lc::kStatusOk) std::free(payload);
  check("LiteRtCreateOpaqueOptions", created);
  OwnedOpaqueOptions owned(opaque);
  check("LiteRtAddOpaqueOptions", lc::LiteRtAddOpaqueOptions(options, opaque));
  owned.release();  // now owned by options
}

// The profiler calls, found in the loaded libLiteRt.so at run time: linking them would make
// a LiteRT without them (an older AAR) fail to start, timing included.
struct ProfilerApi {
  decltype(&lc::LiteRtCompiledModelGetProfiler) get_profiler = nullptr;
  decltype(&lc::LiteRtStartProfiler) start = nullptr;
  decltype(&lc::LiteRtStopProfiler) stop = nullptr;
  decltype(&lc::LiteRtResetProfiler) reset = nullptr;
  decltype(&lc::LiteRtGetNumProfilerEvents) num_events = nullptr;
  decltype(&lc::LiteRtGetProfilerEvents) events = nullptr;

  // Returns the first call the library lacks, "" when it has them all.
  std::string resolve() {
    std::string missing;
    auto find = [&](auto& pointer, const char* name) {
      pointer = reinterpret_cast<std::remove_reference_t<decltype(pointer)>>(
          dlsym(RTLD_DEFAULT, name));
      if (pointer == nullptr && missing.empty()) missing = name;
    };
    find(get_profiler, "LiteRtCompiledModelGetProfiler");
    find(start, "LiteRtStartProfiler");
    find(stop, "LiteRtStopProfiler");
    find(reset, "LiteRtResetProfiler");
    find(num_events, "LiteRtGetNumProfilerEvents");
    find(events, "LiteRtGetProfilerEvents");
    return missing;
  }
};

bool is_delegate_event(const lc::ProfiledEventData& event) {
  return event.event_type == lc::kDelegateOperatorInvokeEvent ||
         event.event_type == lc::kDelegateProfiledOperatorInvokeEvent;
}

// The interpreter node that runs a whole delegated partition: tagged with the delegate
// kernel's name ("TfLiteXNNPackDelegate") or DELEGATE. XNNPACK in LiteRT 2.3.0 asks for
// per-operator profiling, which leaves this node unrecorded; others may record it.
bool is_delegate_kernel(const std::string& tag) {
  return tag == "DELEGATE" || tag.find("Delegate") != std::string::npos;
}

// Sums the operator events of one inference, events[begin, end), into `records` (one entry
// per operator, `index` keyed by delegate, op type and name), counting nothing twice: a
// delegate kernel node gives way to the per-operator events it contains, and an operator
// that runs others (a control-flow op's subgraph) keeps only its own time. Returns how many
// operator events the inference had.
size_t add_inference(const std::vector<lc::ProfiledEventData>& events, size_t begin,
                     size_t end, std::vector<OpRecord>& records,
                     std::unordered_map<std::string, size_t>& index) {
  struct Entry {
    std::string op_type, name, delegate;
    double time_us;
    bool dropped;
  };
  std::vector<Entry> entries;
  size_t operator_events = 0;
  // Interpreter operators still running at the event being read, by their end time.
  std::vector<std::pair<size_t, uint64_t>> open;
  long last_operator = -1;  // the entry of the latest interpreter operator
  long partition = -1;      // the delegate run (XNNPACK numbers its ops from 0 in each)
  uint64_t last_delegate_node = 0;
  bool operator_since_delegate = true;
  for (size_t i = begin; i < end; ++i) {
    const lc::ProfiledEventData& event = events[i];
    const std::string tag = event.tag != nullptr ? event.tag : "?";
    if (event.event_type == lc::kOperatorInvokeEvent) {
      ++operator_events;
      const uint64_t start = event.start_timestamp_us;
      while (!open.empty() && open.back().second <= start) open.pop_back();
      if (!open.empty()) entries[open.back().first].time_us -= event.elapsed_time_us;
      std::string name = tag + " #" + std::to_string(event.event_metadata1);
      if (event.event_metadata2 != 0)
        name += " (subgraph " + std::to_string(event.event_metadata2) + ")";
      const bool kernel = is_delegate_kernel(tag);
      std::string delegate = kNoDelegate;
      if (kernel) {
        std::string lower = tag;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        delegate = lower.find("xnnpack") != std::string::npos || tag == "DELEGATE" ? "XNNPACK"
                                                                                   : tag;
      }
      entries.push_back({tag, name, delegate, static_cast<double>(event.elapsed_time_us), false});
      last_operator = kernel ? static_cast<long>(entries.size() - 1) : -1;
      open.emplace_back(entries.size() - 1, start + event.elapsed_time_us);
      operator_since_delegate = true;
    } else if (is_delegate_event(event)) {
      ++operator_events;
      const uint64_t node = event.event_metadata1;
      if (partition < 0 || operator_since_delegate || node <= last_delegate_node) ++partition;
      last_delegate_node = node;
      operator_since_delegate = false;
      // The kernel node recorded just before this op's partition wraps it.
      if (last_operator >= 0) entries[last_operator].dropped = true;
      std::string name = tag + " #" + std::to_string(node);
      if (partition > 0) name += " (XNNPACK partition " + std::to_string(partition) + ")";
      // The CPU accelerator's only delegate is XNNPACK.
      entries.push_back({tag, name, "XNNPACK", static_cast<double>(event.elapsed_time_us), false});
    }
  }
  for (const Entry& entry : entries) {
    if (entry.dropped) continue;
    const double time_s = (entry.time_us > 0 ? entry.time_us : 0.0) * 1e-6;
    const std::string key = entry.delegate + '\n' + entry.op_type + '\n' + entry.name;
    auto found = index.find(key);
    if (found == index.end()) {
      index.emplace(key, records.size());
      records.push_back({entry.op_type, entry.name, entry.delegate, time_s});
    } else {
      records[found->second].time_s += time_s;
    }
  }
  return operator_events;
}

class TfliteBackend : public Backend {
 public:
  ~TfliteBackend() override {
    // Buffers and the compiled model before the model, the model before the environment.
    inputs_.clear();
    outputs_.clear();
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
    add_toml_options(options, "xnnpack", "num_threads = " + std::to_string(threads) + "\n",
                     where);
    // Profiling is a runtime option read when the compiled model is made: the interpreter
    // then gets the profiler, and XNNPACK times each of its ops.
    if (profiling_) {
      add_toml_options(options, lc::kRuntimeOptionsIdentifier, "enable_profiling = true\n",
                       where);
    }

    lc::CompiledModel compiled_model = nullptr;
    check("LiteRtCreateCompiledModel",
          lc::LiteRtCreateCompiledModel(environment, model, options, &compiled_model));
    compiled_model_.reset(compiled_model);
    if (profiling_) {
      lc::Profiler profiler = nullptr;
      check("LiteRtCompiledModelGetProfiler",
            profiler_api_.get_profiler(compiled_model, &profiler));
      if (profiler == nullptr) {
        throw RunnerError("load", where + "LiteRT made no profiler although the runtime option "
                                          "enable_profiling = true was given (its log on stderr "
                                          "says whether it refused the runtime options)");
      }
      profiler_ = profiler;  // owned by the compiled model
    }

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
    if (input_count == 0 || output_count == 0) {
      throw RunnerError("load", where + "expected inputs and outputs, found " +
                                    std::to_string(input_count) + " inputs and " +
                                    std::to_string(output_count) + " outputs");
    }

    // Run needs a buffer for every input and output, in the signature's order; all are
    // made here, once. The graph's order is what the request and the answer follow.
    std::vector<Port> signature_inputs, signature_outputs;
    for (lc::ParamIndex i = 0; i < input_count; ++i) {
      signature_inputs.push_back(make_buffer(signature, /*is_input=*/true, i, {}, where));
      input_buffers_.push_back(signature_inputs.back().buffer);
    }
    for (lc::ParamIndex i = 0; i < output_count; ++i) {
      signature_outputs.push_back(
          make_buffer(signature, /*is_input=*/false, i, signature_inputs, where));
      output_buffers_.push_back(signature_outputs.back().buffer);
    }
    lc::Subgraph subgraph = nullptr;
    check("LiteRtGetSignatureSubgraph", lc::LiteRtGetSignatureSubgraph(signature, &subgraph));
    inputs_ = in_graph_order(subgraph, /*is_input=*/true, signature_inputs, where);
    outputs_ = in_graph_order(subgraph, /*is_input=*/false, signature_outputs, where);

    bool fully_accelerated = false;
    if (lc::LiteRtCompiledModelIsFullyAccelerated(compiled_model, &fully_accelerated) ==
        lc::kStatusOk) {
      fully_accelerated_ = fully_accelerated ? 1 : 0;
    }
  }

  void infer(const std::vector<InputTensor>& inputs,
             std::vector<std::vector<float>>& outputs) override {
    if (!compiled_model_) {
      throw RunnerError("infer", std::string(kFrameworkName) + ": no model loaded");
    }
    if (inputs.size() != inputs_.size()) throw input_count_error(inputs.size(), inputs_.size());
    auto check = [](const char* call, lc::Status status) {
      if (status != lc::kStatusOk) {
        throw RunnerError("infer", std::string(kFrameworkName) + ": " + describe(call, status));
      }
    };

    void* host = nullptr;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const InputTensor& given = inputs[i];
      const Port& port = inputs_[i];
      size_t count = 1;
      for (int64_t dimension : given.shape) count *= static_cast<size_t>(dimension);
      if (count != port.elements) {
        throw RunnerError("inputs", std::string(kFrameworkName) + ": input '" + given.name +
                                        "' has " + std::to_string(count) +
                                        " values, the model's input " + port.name + " takes " +
                                        std::to_string(port.elements));
      }
      check("LiteRtLockTensorBuffer", lc::LiteRtLockTensorBuffer(port.buffer, &host,
                                                                  lc::kLockWrite));
      try {
        copy_input(given, port.dtype, host, port.elements);
      } catch (...) {
        lc::LiteRtUnlockTensorBuffer(port.buffer);
        throw;
      }
      check("LiteRtUnlockTensorBuffer", lc::LiteRtUnlockTensorBuffer(port.buffer));
    }

    if (profile_started_) {
      // Where this inference's events start: stop_profile() splits them per inference.
      int events = 0;
      check("LiteRtGetNumProfilerEvents", profiler_api_.num_events(profiler_, &events));
      inference_marks_.push_back(static_cast<size_t>(events));
    }
    check("LiteRtRunCompiledModel",
          lc::LiteRtRunCompiledModel(compiled_model_.get(), 0, input_buffers_.size(),
                                     input_buffers_.data(), output_buffers_.size(),
                                     output_buffers_.data()));

    outputs.resize(outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      const Port& port = outputs_[i];
      check("LiteRtLockTensorBuffer", lc::LiteRtLockTensorBuffer(port.buffer, &host,
                                                                  lc::kLockRead));
      outputs[i].resize(port.elements);  // no reallocation after the first call
      to_float(port.dtype, host, port.elements, outputs[i].data());
      check("LiteRtUnlockTensorBuffer", lc::LiteRtUnlockTensorBuffer(port.buffer));
    }
  }

  std::vector<std::string> output_names() const override {
    std::vector<std::string> names;
    for (const Port& port : outputs_) names.push_back(port.name);
    return names;
  }

  std::string version() const override {
    // libLiteRt.so exports no runtime version call; this is the version it was built against.
#ifdef AIOT_TFLITE_DECLARED_VERSION
    return std::string(AIOT_TFLITE_DECLARED_VERSION) + " (declared)";
#else
    return "unknown (AIOT_TFLITE_VERSION not set at build)";
#endif
  }

  std::string enable_profiling() override {
    const std::string missing = profiler_api_.resolve();
    if (!missing.empty()) {
      return "this libLiteRt.so (LiteRT " + declared_version() + ") exports no " + missing +
             ": no per-operator profiler in its C API";
    }
    profiling_ = true;
    return "";
  }

  std::string profile_source() const override {
    return "LiteRT " + declared_version() + " C API profiler";
  }

  void start_profile() override {
    if (profiler_ == nullptr) {
      throw RunnerError("profile", std::string(kFrameworkName) + ": no profiler (load() first)");
    }
    // Start clears the warm-up's events in 2.3.0; the reset keeps them out whatever a later
    // start does.
    check_profile("LiteRtResetProfiler", profiler_api_.reset(profiler_));
    check_profile("LiteRtStartProfiler", profiler_api_.start(profiler_));
    inference_marks_.clear();
    profile_started_ = true;
  }

  std::vector<OpRecord> stop_profile() override {
    if (!profile_started_) return {};
    profile_started_ = false;
    check_profile("LiteRtStopProfiler", profiler_api_.stop(profiler_));
    int count = 0;
    check_profile("LiteRtGetNumProfilerEvents", profiler_api_.num_events(profiler_, &count));
    std::vector<lc::ProfiledEventData> events(static_cast<size_t>(count > 0 ? count : 0));
    if (count > 0) {
      check_profile("LiteRtGetProfilerEvents",
                    profiler_api_.events(profiler_, count, events.data()));
    }
    std::vector<OpRecord> records;
    std::unordered_map<std::string, size_t> index;
    size_t first_count = 0;
    for (size_t i = 0; i < inference_marks_.size(); ++i) {
      const size_t begin = std::min(inference_marks_[i], events.size());
      const size_t end = i + 1 < inference_marks_.size()
                             ? std::min(inference_marks_[i + 1], events.size())
                             : events.size();
      const size_t operators = add_inference(events, begin, end, records, index);
      // A classifier runs the same operators every time; fewer later means LiteRT's event
      // buffer filled and dropped the rest, which would understate every mean.
      if (i == 0) {
        first_count = operators;
      } else if (operators != first_count) {
        throw RunnerError("profile", std::string(kFrameworkName) + ": LiteRT's profiler recorded " +
                                         std::to_string(first_count) +
                                         " operator events in the first profiled inference and " +
                                         std::to_string(operators) + " in inference " +
                                         std::to_string(i + 1) +
                                         " (its event buffer may have filled: fewer runs)");
      }
    }
    return records;
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
  // One of the model's inputs or outputs: its tensor and the buffer Run reads or fills.
  struct Port {
    std::string name;  // the tensor's
    lc::Tensor tensor = nullptr;
    DType dtype = DType::kFloat32;
    size_t elements = 0;
    lc::TensorBuffer buffer = nullptr;
  };

  // Makes the managed (host memory on CPU) buffer the compiled model asks for, of one of the
  // protocol's dtypes, for the signature's input or output `index`. An output that is one
  // of `inputs`' own tensor (a cast the converter dropped: int64 ids to int32 returned)
  // shares that input's buffer: LiteRT binds one buffer per tensor, the output's last, and
  // the input would otherwise be read from a buffer nobody wrote.
  Port make_buffer(lc::Signature signature, bool is_input, lc::ParamIndex index,
                   const std::vector<Port>& inputs, const std::string& where) {
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
    for (const Port& input : inputs) {
      if (input.tensor == tensor) return input;
    }
    lc::TensorTypeId type_id{};
    check("LiteRtGetTensorTypeId", lc::LiteRtGetTensorTypeId(tensor, &type_id));
    if (type_id != lc::kRankedTensorType) {
      throw RunnerError("load", where + what + " has no fixed rank");
    }
    lc::RankedTensorType type{};
    check("LiteRtGetRankedTensorType", lc::LiteRtGetRankedTensorType(tensor, &type));
    const char* name = nullptr;
    check("LiteRtGetTensorName", lc::LiteRtGetTensorName(tensor, &name));
    Port port;
    port.name = name != nullptr ? name : "";
    port.tensor = tensor;
    const std::optional<DType> dtype = dtype_of(type.element_type);
    if (!dtype) {
      throw RunnerError("load", where + what + " (" + port.name + ") has element type " +
                                    std::to_string(static_cast<int>(type.element_type)) +
                                    " (TfLiteType); the runner feeds and reads " + dtype_names());
    }
    port.dtype = *dtype;
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
    check("LiteRtGetTensorBufferPackedSize",
          lc::LiteRtGetTensorBufferPackedSize(buffer, &packed_size));
    if (packed_size < elements * dtype_bytes(port.dtype)) {
      throw RunnerError("load", where + what + ": buffer of " + std::to_string(packed_size) +
                                    " bytes for " + std::to_string(elements) + " " +
                                    dtype_name(port.dtype) + " values");
    }
    port.elements = elements;
    port.buffer = buffer;
    return port;
  }

  // The signature's ports in the graph's order (the interpreter's input or output tensors),
  // matched by tensor: the signature sorts them by name.
  std::vector<Port> in_graph_order(lc::Subgraph subgraph, bool is_input,
                                   const std::vector<Port>& ports, const std::string& where) {
    const char* kind = is_input ? "input" : "output";
    auto check = [&](const char* call, lc::Status status) {
      if (status != lc::kStatusOk) throw RunnerError("load", where + describe(call, status));
    };
    lc::ParamIndex count = 0;
    check(is_input ? "LiteRtGetNumSubgraphInputs" : "LiteRtGetNumSubgraphOutputs",
          is_input ? lc::LiteRtGetNumSubgraphInputs(subgraph, &count)
                   : lc::LiteRtGetNumSubgraphOutputs(subgraph, &count));
    if (count != ports.size()) {
      throw RunnerError("load", where + "the graph has " + std::to_string(count) + " " + kind +
                                    "s, its signature " + std::to_string(ports.size()));
    }
    std::vector<Port> ordered;
    for (lc::ParamIndex i = 0; i < count; ++i) {
      lc::Tensor tensor = nullptr;
      check(is_input ? "LiteRtGetSubgraphInput" : "LiteRtGetSubgraphOutput",
            is_input ? lc::LiteRtGetSubgraphInput(subgraph, i, &tensor)
                     : lc::LiteRtGetSubgraphOutput(subgraph, i, &tensor));
      auto same = [&](const Port& port) { return port.tensor == tensor; };
      const auto found = std::find_if(ports.begin(), ports.end(), same);
      if (found == ports.end()) {
        throw RunnerError("load", where + "the graph's " + kind + " " + std::to_string(i) +
                                      " is not in its signature");
      }
      ordered.push_back(*found);
    }
    return ordered;
  }

  static std::string declared_version() {
#ifdef AIOT_TFLITE_DECLARED_VERSION
    return AIOT_TFLITE_DECLARED_VERSION;
#else
    return "(version unknown)";
#endif
  }

  static void check_profile(const char* call, lc::Status status) {
    if (status != lc::kStatusOk) {
      throw RunnerError("profile", std::string(kFrameworkName) + ": " + describe(call, status));
    }
  }

  OwnedEnvironment environment_;
  OwnedModel model_;
  OwnedOptions options_;  // kept for the compiled model's lifetime, which may refer to it
  OwnedCompiledModel compiled_model_;
  std::vector<OwnedTensorBuffer> owned_buffers_;
  std::vector<lc::TensorBuffer> input_buffers_;   // the signature's order, as Run takes them
  std::vector<lc::TensorBuffer> output_buffers_;
  std::vector<Port> inputs_;  // the graph's order, as the request gives them
  std::vector<Port> outputs_;  // the graph's order, as they are answered
  int threads_ = 0;
  int fully_accelerated_ = -1;  // -1: not known
  // Profiling (a profile pass's own instance only).
  ProfilerApi profiler_api_;
  bool profiling_ = false;           // enable_profiling() succeeded: load() asks for it
  lc::Profiler profiler_ = nullptr;  // the compiled model's
  bool profile_started_ = false;
  std::vector<size_t> inference_marks_;  // event count before each profiled inference
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<TfliteBackend>(); }

}  // namespace aiot
