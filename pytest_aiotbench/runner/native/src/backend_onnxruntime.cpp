// ONNX Runtime: an .onnx model run through ORT's C API (libonnxruntime.so) on the CPU
// execution provider, with the Python runner's session options: ORT_ENABLE_ALL graph
// optimisation, intra-op threads = the thread count, one inter-op thread, sequential
// execution. Like session.run(None, {name: batch, ...}), input i of the request feeds the
// session's input i, and every output is answered, in the session's order.
//
// The API table is asked for at the header's ORT_API_VERSION: the C API only grows, so a
// header older than the library (Debian's libonnxruntime-dev beside the wheel's library)
// is fine, and a library older than the header is refused with a clear message.
//
// Per-operator profiles come from ORT's own session profiler (EnableProfiling), whose JSON
// trace is written into a private temporary folder and removed once read.
#include "backend.hpp"

#include <nlohmann/json.hpp>
#include <onnxruntime_c_api.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

namespace aiot {

const char* const kFrameworkName = "onnxruntime";

namespace {

// Ort handles released through the API table's Release* calls.
template <typename T>
struct Releaser {
  void (*release)(T*) = nullptr;
  void operator()(T* handle) const {
    if (handle != nullptr && release != nullptr) release(handle);
  }
};
template <typename T>
using Owned = std::unique_ptr<T, Releaser<T>>;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The protocol's dtypes as ONNX element types; nullopt for any other.
std::optional<DType> dtype_of(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DType::kFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DType::kInt64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return DType::kUInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return DType::kBool;
    default: return std::nullopt;
  }
}

ONNXTensorElementDataType onnx_type_of(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case DType::kFloat16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case DType::kInt64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case DType::kInt32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case DType::kUInt8: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    case DType::kBool: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
  }
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

std::string unsupported_type(ONNXTensorElementDataType type) {
  return "element type " + std::to_string(static_cast<int>(type)) +
         " (ONNXTensorElementDataType); the runner feeds and reads " + dtype_names();
}

// 0 for a dynamic (negative) dimension.
size_t element_count(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t dimension : shape) {
    if (dimension < 0) return 0;
    count *= static_cast<size_t>(dimension);
  }
  return count;
}

// The operators of ORT's profiling trace that ran inside the runs after the first `skipped`
// (the trace starts at session creation, so the warm-up runs are in it too). A run is the
// "model_run" event, an operator its "<node>_kernel_time" event (the _fence_before/_after
// events around it are ORT's waits, not the kernel).
std::vector<OpRecord> trace_records(const std::string& trace, long skipped) {
  struct Kernel {
    double ts;
    OpRecord record;
  };
  std::vector<std::pair<double, double>> runs;  // [start, end] in microseconds
  std::vector<Kernel> kernels;
  static const std::string suffix = "_kernel_time";
  const nlohmann::json events = nlohmann::json::parse(trace);
  if (!events.is_array()) throw std::runtime_error("the profiling trace is not a JSON array");
  auto text = [](const nlohmann::json& object, const char* key) {
    const auto found = object.find(key);
    return found != object.end() && found->is_string() ? found->get<std::string>()
                                                       : std::string();
  };
  auto number = [](const nlohmann::json& object, const char* key) {
    const auto found = object.find(key);
    return found != object.end() && found->is_number() ? found->get<double>() : 0.0;
  };
  for (const nlohmann::json& event : events) {
    if (!event.is_object()) continue;
    const std::string category = text(event, "cat");
    const std::string name = text(event, "name");
    if (category == "Session" && name == "model_run") {
      const double start = number(event, "ts");
      runs.emplace_back(start, start + number(event, "dur"));
      continue;
    }
    if (category != "Node" || name.size() < suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    Kernel kernel{number(event, "ts"), {}};
    OpRecord& record = kernel.record;
    record.name = name.substr(0, name.size() - suffix.size());
    if (const auto args = event.find("args"); args != event.end() && args->is_object()) {
      record.op_type = text(*args, "op_name");
      record.delegate = text(*args, "provider");
    }
    if (record.op_type.empty()) record.op_type = record.name;
    if (record.delegate.empty()) record.delegate = kNoDelegate;
    record.time_s = number(event, "dur") * 1e-6;
    kernels.push_back(std::move(kernel));
  }

  std::sort(runs.begin(), runs.end());
  if (static_cast<long>(runs.size()) <= skipped) {
    throw std::runtime_error("the profiling trace has " + std::to_string(runs.size()) +
                             " model_run events, none after the " + std::to_string(skipped) +
                             " runs before start_profile");
  }
  runs.erase(runs.begin(), runs.begin() + skipped);
  std::vector<OpRecord> records;
  for (Kernel& kernel : kernels) {
    // The last profiled run that started at or before the kernel, if the kernel is inside it.
    auto after = std::upper_bound(runs.begin(), runs.end(),
                                  std::make_pair(kernel.ts, std::numeric_limits<double>::max()));
    if (after != runs.begin() && kernel.ts <= std::prev(after)->second) {
      records.push_back(std::move(kernel.record));
    }
  }
  return records;
}

// A new private folder for the profiler's trace: under $TMPDIR, /tmp or, where neither is
// there (an Android shell), the working folder.
std::string make_scratch_folder() {
  std::vector<std::string> bases;
  if (const char* tmpdir = std::getenv("TMPDIR"); tmpdir != nullptr && *tmpdir != '\0') {
    bases.emplace_back(tmpdir);
  }
  bases.emplace_back("/tmp");
  bases.emplace_back(".");
  std::string tried;
  for (const std::string& base : bases) {
    std::string pattern = base + "/aiot-ort-profile-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) return pattern;
    tried += (tried.empty() ? "" : ", ") + base + " (" + std::strerror(errno) + ")";
  }
  throw std::runtime_error("cannot make a folder for the profiling trace in " + tried);
}

// Removes the folder and the files in it (the profiler writes no subfolders).
void remove_scratch_folder(const std::string& folder) {
  if (DIR* listing = opendir(folder.c_str())) {
    while (const dirent* entry = readdir(listing)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") unlink((folder + "/" + name).c_str());
    }
    closedir(listing);
  }
  rmdir(folder.c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw std::runtime_error("cannot read the profiling trace " + path);
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

class OnnxRuntimeBackend : public Backend {
 public:
  ~OnnxRuntimeBackend() override {
    // A session still profiling writes its trace when released: release it first, then
    // remove the folder with whatever is in it.
    if (scratch_.empty()) return;
    for (auto& value : outputs_) value.reset();
    for (Input& input : inputs_) input.value.reset();
    session_.reset();
    remove_scratch_folder(scratch_);
  }

  bool spins_when_idle() const override { return true; }
  void quiet_idle_threads() override { quiet_ = true; }

  void load(const std::string& path, int threads) override {
    const std::string where = std::string(kFrameworkName) + ": cannot load " + path + ": ";
    api_ = OrtGetApiBase()->GetApi(ORT_API_VERSION);
    if (api_ == nullptr) {
      throw RunnerError("load", where + "libonnxruntime " + OrtGetApiBase()->GetVersionString() +
                                    " does not provide C API version " +
                                    std::to_string(ORT_API_VERSION) +
                                    " (the header the runner was built with is newer)");
    }
    auto check = [&](OrtStatus* status) { this->check(status, "load", where); };

    OrtEnv* environment = nullptr;
    check(api_->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "aiot_runner", &environment));
    environment_ = own(environment, api_->ReleaseEnv);

    OrtSessionOptions* raw_options = nullptr;
    check(api_->CreateSessionOptions(&raw_options));
    Owned<OrtSessionOptions> options = own(raw_options, api_->ReleaseSessionOptions);
    check(api_->SetSessionGraphOptimizationLevel(raw_options, ORT_ENABLE_ALL));
    check(api_->SetIntraOpNumThreads(raw_options, threads));
    check(api_->SetInterOpNumThreads(raw_options, 1));
    check(api_->SetSessionExecutionMode(raw_options, ORT_SEQUENTIAL));
    if (quiet_) check(api_->AddSessionConfigEntry(raw_options, "session.intra_op.allow_spinning",
                                                  "0"));
    if (!scratch_.empty()) {
      // The prefix of the trace's file name; ORT adds the date and ".json".
      check(api_->EnableProfiling(raw_options, (scratch_ + "/ort_profile").c_str()));
    }
    // No provider appended: the CPU execution provider is the default and the only one.

    OrtSession* session = nullptr;
    check(api_->CreateSession(environment, path.c_str(), raw_options, &session));
    session_ = own(session, api_->ReleaseSession);
    threads_ = threads;

    size_t input_count = 0;
    size_t output_count = 0;
    check(api_->SessionGetInputCount(session, &input_count));
    check(api_->SessionGetOutputCount(session, &output_count));
    if (input_count == 0 || output_count == 0) {
      throw RunnerError("load", where + "the model has " + std::to_string(input_count) +
                                    " inputs and " + std::to_string(output_count) + " outputs");
    }
    for (size_t i = 0; i < output_count; ++i) {
      output_names_.push_back(io_name(session, /*is_input=*/false, i, where));
      tensor_type(session, /*is_input=*/false, i, output_names_.back(), where);
    }
    for (const std::string& name : output_names_) output_name_pointers_.push_back(name.c_str());
    outputs_.resize(output_count);
    fetched_.resize(output_count);
    output_types_.resize(output_count);
    output_elements_.resize(output_count);

    OrtMemoryInfo* memory_info = nullptr;
    check(api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_info));
    memory_info_ = own(memory_info, api_->ReleaseMemoryInfo);

    // Each input tensor over our own buffer, of the type the model declares, once, when the
    // model fixes its shape; a dynamic one waits for the first infer(), which is not timed
    // as steady state.
    inputs_.resize(input_count);
    input_values_.assign(input_count, nullptr);
    for (size_t i = 0; i < input_count; ++i) {
      Input& input = inputs_[i];
      input.name = io_name(session, /*is_input=*/true, i, where);
      std::vector<int64_t> model_shape;
      input.dtype = tensor_type(session, /*is_input=*/true, i, input.name, where, &model_shape);
      if (element_count(model_shape) > 0) prepare_input(i, model_shape, "load", where);
    }
    for (const Input& input : inputs_) input_name_pointers_.push_back(input.name.c_str());
  }

  void infer(const std::vector<InputTensor>& inputs,
             std::vector<std::vector<float>>& outputs) override {
    static const std::string where = std::string(kFrameworkName) + ": ";
    if (!session_) throw RunnerError("infer", where + "no model loaded");
    if (inputs.size() != inputs_.size()) throw input_count_error(inputs.size(), inputs_.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const InputTensor& given = inputs[i];
      if (given.shape != inputs_[i].shape) {
        if (element_count(given.shape) == 0) {
          throw RunnerError("inputs", where + "cannot feed input '" + given.name +
                                          "' of shape " + shape_text(given.shape));
        }
        prepare_input(i, given.shape, "infer", where);
      }
      copy_input(given, inputs_[i].dtype, inputs_[i].buffer.data(), inputs_[i].elements);
    }

    // The outputs ORT made on the first run are handed back on later ones, so it writes
    // into their buffers instead of allocating new ones (it refuses a shape that no longer
    // fits, and a new input shape drops them).
    std::vector<OrtValue*>& fetched = fetched_;  // sized in load()
    for (size_t i = 0; i < outputs_.size(); ++i) fetched[i] = outputs_[i].get();
    check(api_->Run(session_.get(), nullptr, input_name_pointers_.data(), input_values_.data(),
                    input_values_.size(), output_name_pointers_.data(),
                    output_name_pointers_.size(), fetched.data()),
          "infer", where);
    ++runs_;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      if (outputs_[i].get() != fetched[i]) {
        // A value ORT made: its type and size are read once, not on every call.
        outputs_[i] = own(fetched[i], api_->ReleaseValue);
        describe_output(i);
      }
    }

    outputs.resize(outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      void* values = nullptr;
      check(api_->GetTensorMutableData(outputs_[i].get(), &values), "infer", where);
      outputs[i].resize(output_elements_[i]);  // no reallocation after the first call
      to_float(output_types_[i], values, output_elements_[i], outputs[i].data());
    }
  }

  std::vector<std::string> output_names() const override { return output_names_; }

  std::string version() const override { return OrtGetApiBase()->GetVersionString(); }

  std::string enable_profiling() override {
    scratch_ = make_scratch_folder();
    return "";
  }

  std::string profile_source() const override {
    return std::string("onnxruntime ") + version() + " session profiling";
  }

  void start_profile() override { runs_before_profile_ = runs_; }

  std::vector<OpRecord> stop_profile() override {
    static const std::string where = std::string(kFrameworkName) + ": profiling: ";
    if (!session_ || scratch_.empty()) throw RunnerError("profile", where + "not enabled");
    OrtAllocator* allocator = nullptr;  // the default allocator is not to be released
    check(api_->GetAllocatorWithDefaultOptions(&allocator), "profile", where);
    char* raw_path = nullptr;
    check(api_->SessionEndProfiling(session_.get(), allocator, &raw_path), "profile", where);
    const std::string path = raw_path != nullptr ? raw_path : "";
    if (raw_path != nullptr) check(api_->AllocatorFree(allocator, raw_path), "profile", where);
    if (path.empty()) throw RunnerError("profile", where + "ORT wrote no trace");
    std::string text = read_file(path);
    unlink(path.c_str());  // the rest of the folder goes with this object
    return trace_records(text, runs_before_profile_);
  }

  std::vector<std::string> notes() const override {
    return {"ONNX Runtime C API " + std::to_string(ORT_API_VERSION) +
            ", CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads=" +
            std::to_string(threads_) + ", inter_op_num_threads=1, sequential"};
  }

 private:
  template <typename T>
  static Owned<T> own(T* handle, void (*release)(T*)) {
    return Owned<T>(handle, Releaser<T>{release});
  }

  void check(OrtStatus* status, const char* stage, const std::string& where) const {
    if (status == nullptr) return;
    std::string message = api_->GetErrorMessage(status);
    api_->ReleaseStatus(status);
    throw RunnerError(stage, where + message);
  }

  std::string io_name(OrtSession* session, bool is_input, size_t index, const std::string& where) {
    OrtAllocator* allocator = nullptr;  // the default allocator is not to be released
    check(api_->GetAllocatorWithDefaultOptions(&allocator), "load", where);
    char* raw = nullptr;
    check(is_input ? api_->SessionGetInputName(session, index, allocator, &raw)
                   : api_->SessionGetOutputName(session, index, allocator, &raw),
          "load", where);
    std::string name = raw;
    check(api_->AllocatorFree(allocator, raw), "load", where);
    return name;
  }

  // The DType the session declares for input or output `index`, a tensor of one of the
  // protocol's dtypes, and its declared shape (negative: dynamic) where asked.
  DType tensor_type(OrtSession* session, bool is_input, size_t index, const std::string& name,
                    const std::string& where, std::vector<int64_t>* shape = nullptr) {
    const std::string what = std::string(is_input ? "input '" : "output '") + name + "' ";
    auto check = [&](OrtStatus* status) { this->check(status, "load", where); };
    OrtTypeInfo* raw_type = nullptr;
    check(is_input ? api_->SessionGetInputTypeInfo(session, index, &raw_type)
                   : api_->SessionGetOutputTypeInfo(session, index, &raw_type));
    Owned<OrtTypeInfo> type = own(raw_type, api_->ReleaseTypeInfo);
    const OrtTensorTypeAndShapeInfo* tensor_info = nullptr;
    check(api_->CastTypeInfoToTensorInfo(raw_type, &tensor_info));
    if (tensor_info == nullptr) throw RunnerError("load", where + what + "is not a tensor");
    ONNXTensorElementDataType element_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    check(api_->GetTensorElementType(tensor_info, &element_type));
    const std::optional<DType> dtype = dtype_of(element_type);
    if (!dtype) throw RunnerError("load", where + what + "has " + unsupported_type(element_type));
    if (shape != nullptr) {
      size_t rank = 0;
      check(api_->GetDimensionsCount(tensor_info, &rank));
      shape->resize(rank);
      check(api_->GetDimensions(tensor_info, shape->data(), rank));
    }
    return *dtype;
  }

  // Input `index`'s tensor of this shape over its buffer, which the runner owns.
  void prepare_input(size_t index, const std::vector<int64_t>& shape, const char* stage,
                     const std::string& where) {
    Input& input = inputs_[index];
    input.value.reset();
    input_values_[index] = nullptr;
    for (auto& value : outputs_) value.reset();  // their shapes may change too
    input.elements = element_count(shape);
    input.buffer.assign(input.elements * dtype_bytes(input.dtype), 0);
    OrtValue* value = nullptr;
    check(api_->CreateTensorWithDataAsOrtValue(memory_info_.get(), input.buffer.data(),
                                               input.buffer.size(), shape.data(), shape.size(),
                                               onnx_type_of(input.dtype), &value),
          stage, where);
    input.value = own(value, api_->ReleaseValue);
    input_values_[index] = value;
    input.shape = shape;
  }

  // The element type and count of output `index`, a value ORT has just made.
  void describe_output(size_t index) {
    const std::string where =
        std::string(kFrameworkName) + ": output '" + output_names_[index] + "': ";
    const OrtValue* value = outputs_[index].get();
    int is_tensor = 0;
    check(api_->IsTensor(value, &is_tensor), "infer", where);
    if (!is_tensor) throw RunnerError("infer", where + "not a tensor");
    OrtTensorTypeAndShapeInfo* raw_info = nullptr;
    check(api_->GetTensorTypeAndShape(value, &raw_info), "infer", where);
    Owned<OrtTensorTypeAndShapeInfo> info = own(raw_info, api_->ReleaseTensorTypeAndShapeInfo);
    ONNXTensorElementDataType element_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    check(api_->GetTensorElementType(raw_info, &element_type), "infer", where);
    const std::optional<DType> dtype = dtype_of(element_type);
    if (!dtype) throw RunnerError("infer", where + unsupported_type(element_type));
    size_t count = 0;
    check(api_->GetTensorShapeElementCount(raw_info, &count), "infer", where);
    output_types_[index] = *dtype;
    output_elements_[index] = count;
  }

  // Declared so that they are released in reverse: values, session, environment.
  const OrtApi* api_ = nullptr;
  Owned<OrtEnv> environment_;
  Owned<OrtSession> session_;
  Owned<OrtMemoryInfo> memory_info_;
  // One of the session's inputs: the tensor the runner feeds it, over the runner's buffer.
  struct Input {
    std::string name;
    DType dtype = DType::kFloat32;  // as the model declares it; a request's is converted
    std::vector<int64_t> shape;     // of `value`; empty until prepared
    size_t elements = 0;
    std::vector<unsigned char> buffer;  // the tensor's storage
    Owned<OrtValue> value;
  };
  std::vector<Input> inputs_;
  std::vector<const char*> input_name_pointers_;  // Run's view of inputs_
  std::vector<const OrtValue*> input_values_;
  std::vector<std::string> output_names_;
  std::vector<const char*> output_name_pointers_;
  std::vector<Owned<OrtValue>> outputs_;  // empty until the first run
  std::vector<OrtValue*> fetched_;  // Run's view of outputs_
  std::vector<DType> output_types_;  // read from each value ORT makes
  std::vector<size_t> output_elements_;
  int threads_ = 0;
  bool quiet_ = false;  // idle intra-op threads sleep instead of spin-waiting
  std::string scratch_;  // the profiler's folder; empty: not profiling
  long runs_ = 0;  // Run() calls, the trace's model_run events
  long runs_before_profile_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<OnnxRuntimeBackend>(); }

}  // namespace aiot
