// The runner protocol's messages as plain structs, and their JSON: the one place the C++
// runner reads or writes JSON (nlohmann-json, kept in this file so that the rest compiles
// without it) and names the protocol's fields, each through protocol_fields.hpp, which CMake
// generates from runner/protocol_schema.json.
//
// Conventions on top of JSON:
//  - A request's missing or mistyped field is a RunnerError("request", ...) naming it.
//  - A non-finite number is the string "NaN", "Infinity" or "-Infinity", read and written
//    (JSON has no such token; the host reads either form). Invalid UTF-8 in a framework's
//    message is replaced, never fatal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "npy.hpp"
#include "protocol_fields.hpp"
#include "system.hpp"

namespace aiot {

using protocol::kProtocolVersion;

// The stopping rule as the host sets it; its defaults live on the host (protocol.Timing).
struct Timing {
  std::string mode;  // "rigorous", or "paper": one end-to-end pass, first image included
  double warmup_s = 0, min_time_s = 0, max_time_s = 0, target_rel_ci = 0, confidence = 0;
  long warmup_min_samples = 0, min_samples = 0, max_samples = 0;
};

// The baseline's artifact, timed beside the request's own in rounds of alternating order.
struct PairedRequest {
  std::string artifact;
  long block_min_samples = 0, min_rounds = 0, max_rounds = 0;
  double block_min_time_s = 0, max_time_s = 0, target_rel_ci = 0;
};

// The per-operator profiling pass, after timing.
struct ProfileRequest {
  long runs = 0, warmup_runs = 0;
};

// Answer each labelled item by the class of each position of its first output: the argmax
// along `axis` of an output of `shape` (message class_map_request).
struct ClassMapRequest {
  long axis = 1;
  std::vector<int64_t> shape;
};

// One model input's tensor file (message tensor_file).
struct TensorFile {
  std::string name;  // the model input's name, as the card declares it
  DType dtype = DType::kFloat32;  // what the file holds
  std::string path;
};

struct Request {
  std::string framework, artifact;
  std::vector<TensorFile> probe_inputs;  // one per model input, in the model's input order
  std::optional<std::vector<TensorFile>> labelled_inputs;  // the same, rows: labelled items
  int threads = 1;
  bool peak_asked = false;  // peak_probe_threads not empty
  Timing timing;
  std::optional<PairedRequest> paired;  // null: not asked
  std::optional<ProfileRequest> profile;  // null: not asked
  std::optional<ClassMapRequest> class_map;  // null: top_k
};

// Throws RunnerError: "protocol" for another version, "request" for anything malformed.
Request parse_request(const std::string& text);

struct LabelledPass {
  std::vector<double> end_to_end_s, inference_s;
  std::vector<std::vector<long>> top_k;
  std::optional<std::vector<std::vector<long>>> class_maps;  // asked for: top_k stays empty
};

struct PairedRound {
  std::string order;  // a protocol::paired_order value
  std::vector<double> baseline_s, current_s;
};

struct PairedResult {
  double load_s = 0;
  std::vector<double> warmup_samples_s;
  std::vector<PairedRound> rounds;
  std::string stop_reason;
};

struct ProfiledOp {
  std::string op_type, name, delegate;
  double time_s = 0;  // mean per profiled inference
};

struct ProfileResult {
  std::vector<ProfiledOp> ops;
  double total_s = 0;  // mean profiled inference
  long runs = 0;
  std::string source;
  std::string unavailable;  // why not ("" where profiled)
};

struct Result {
  std::string runtime, framework_version, stop_reason;
  int threads = 1;
  double load_s = 0, first_inference_s = 0;
  std::vector<double> warmup_samples_s, samples_s;
  std::vector<std::vector<std::vector<double>>> probe_outputs;  // per probe, per output
  std::vector<std::string> output_names;
  std::optional<LabelledPass> labelled;  // decoded on the host: decoded_on_device false
  ThermalState thermal_before, thermal_after;
  std::optional<CoreTimes> competing_load;  // over the timed phase; null where unknown
  int64_t rss_after_load = -1, rss_after_timing = -1;  // -1: unknown (null)
  std::vector<std::string> notes;
  bool peak_asked = false;  // answered "not measured" when asked, null otherwise
  std::optional<PairedResult> paired;  // null when not asked
  std::optional<ProfileResult> profile;  // null when not asked
};

// Each one line of JSON, newline-terminated.
std::string result_json(const Result& result);
std::string failure_json(const std::string& stage, const std::string& error);
std::string describe_json();

// The statistics test hook (--statistics): its question and its answer.
struct StatisticsQuery {
  std::vector<double> samples, probabilities;
  double confidence = 0.95;
};
struct StatisticsAnswer {
  long lower = 0, upper = 0;
  double median = 0, relative_half_width = 0;
  std::vector<double> normal_quantiles;
};
StatisticsQuery parse_statistics_query(const std::string& text);
std::string statistics_json(const StatisticsAnswer& answer);

}  // namespace aiot
