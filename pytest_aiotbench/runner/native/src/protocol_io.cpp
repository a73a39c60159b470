#include "protocol_io.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "backend.hpp"

namespace aiot {

namespace {

// Insertion order kept: a result reads in the order it is written.
using Json = nlohmann::ordered_json;

const char* const kNaN = "NaN";
const char* const kInfinity = "Infinity";
const char* const kMinusInfinity = "-Infinity";

Json number(double value) {
  if (std::isnan(value)) return kNaN;
  if (std::isinf(value)) return value > 0 ? kInfinity : kMinusInfinity;
  return value;
}

Json numbers(const std::vector<double>& values) {
  Json array = Json::array();
  for (double value : values) array.push_back(number(value));
  return array;
}

std::string line(const Json& document) {
  return document.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

// A request's fields, each named in messages as "<where> has no <kind> <key>".
class Fields {
 public:
  Fields(const Json& object, std::string where) : object_(object), where_(std::move(where)) {
    if (!object_.is_object()) throw RunnerError("request", where_ + " is not a JSON object");
  }
  bool absent(const char* key) const {
    const auto found = object_.find(key);
    return found == object_.end() || found->is_null();
  }
  const Json& get(const char* key) const {
    const auto found = object_.find(key);
    if (found == object_.end()) throw RunnerError("request", where_ + " has no field " + key);
    return *found;
  }
  double number(const char* key) const {
    const Json& value = get(key);
    if (value.is_number()) return value.get<double>();
    if (value.is_string()) {
      const auto& text = value.get_ref<const std::string&>();
      if (text == kNaN) return NAN;
      if (text == kInfinity) return INFINITY;
      if (text == kMinusInfinity) return -INFINITY;
    }
    throw RunnerError("request", where_ + " has no number " + key);
  }
  // A count: "Infinity" (no cap) saturates, where a plain cast to long would be undefined.
  long count(const char* key) const {
    const double value = number(key);
    using Limits = std::numeric_limits<long>;
    if (std::isnan(value)) throw RunnerError("request", where_ + " has no count " + key);
    if (value >= static_cast<double>(Limits::max())) return Limits::max();
    if (value <= static_cast<double>(Limits::min())) return Limits::min();
    return static_cast<long>(value);
  }
  std::string text(const char* key) const {
    const Json& value = get(key);
    if (!value.is_string()) throw RunnerError("request", where_ + " has no string " + key);
    return value.get<std::string>();
  }

 private:
  const Json& object_;
  std::string where_;
};

Json parse(const std::string& text, const char* what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& error) {
    throw RunnerError("request", std::string("cannot parse the ") + what + ": " + error.what());
  }
}

void check_version(const Json& request) {
  const auto found = request.find(protocol::request::protocol_version);
  const bool absent = found == request.end() || found->is_null();
  if (!absent && found->is_number() && found->get<double>() == kProtocolVersion) return;
  throw RunnerError("protocol",
                    "the host speaks runner protocol " +
                        (absent ? std::string("1 (unversioned)") : found->dump()) +
                        ", this native runner speaks " + std::to_string(kProtocolVersion) +
                        ": rebuild it with the plugin's version (aiotbench-build-runner)");
}

Timing read_timing(const Fields& request) {
  namespace field = protocol::timing;
  if (!request.get(protocol::request::timing).is_object())
    throw RunnerError("request", "the request has no timing object");
  const Fields json(request.get(protocol::request::timing), "the request's timing");
  Timing t;
  t.mode = json.absent(field::mode) ? "" : json.text(field::mode);
  t.warmup_s = json.number(field::warmup_s);
  t.warmup_min_samples = json.count(field::warmup_min_samples);
  t.min_samples = json.count(field::min_samples);
  t.min_time_s = json.number(field::min_time_s);
  t.max_time_s = json.number(field::max_time_s);
  t.max_samples = json.count(field::max_samples);
  t.target_rel_ci = json.number(field::target_rel_ci);
  t.confidence = json.number(field::confidence);
  return t;
}

std::optional<PairedRequest> read_paired(const Fields& request) {
  namespace field = protocol::paired_request;
  if (request.absent(protocol::request::paired)) return std::nullopt;
  const Fields json(request.get(protocol::request::paired), "the request's paired");
  PairedRequest p;
  p.artifact = json.text(field::artifact);
  p.block_min_samples = json.count(field::block_min_samples);
  p.block_min_time_s = json.number(field::block_min_time_s);
  p.min_rounds = json.count(field::min_rounds);
  p.max_rounds = json.count(field::max_rounds);
  p.max_time_s = json.number(field::max_time_s);
  p.target_rel_ci = json.number(field::target_rel_ci);
  return p;
}

std::optional<ProfileRequest> read_profile(const Fields& request) {
  namespace field = protocol::profile_request;
  if (request.absent(protocol::request::profile)) return std::nullopt;
  const Fields json(request.get(protocol::request::profile), "the request's profile");
  ProfileRequest p;
  p.runs = json.count(field::runs);
  p.warmup_runs = json.count(field::warmup_runs);
  if (p.runs < 1) throw RunnerError("request", "the request's profile asks for no runs");
  return p;
}

std::optional<ClassMapRequest> read_class_map(const Fields& request) {
  namespace field = protocol::class_map_request;
  if (request.absent(protocol::request::class_map)) return std::nullopt;
  const Fields json(request.get(protocol::request::class_map), "the request's class_map");
  ClassMapRequest map;
  map.axis = json.count(field::axis);
  const Json& shape = json.get(field::shape);
  if (!shape.is_array()) throw RunnerError("request", "the request's class_map has no shape");
  for (const Json& size : shape) {
    if (!size.is_number_integer() || size.get<int64_t>() < 1)
      throw RunnerError("request", "the request's class_map shape holds a size below 1");
    map.shape.push_back(size.get<int64_t>());
  }
  if (map.axis < 0 || map.axis >= static_cast<long>(map.shape.size()))
    throw RunnerError("request", "the request's class_map axis " + std::to_string(map.axis) +
                                     " is not an axis of its shape");
  return map;
}

// A list of message tensor_file: one per model input, at least one.
std::vector<TensorFile> read_tensor_files(const Fields& request, const char* key) {
  namespace field = protocol::tensor_file;
  const Json& list = request.get(key);
  const std::string where = std::string("the request's ") + key;
  if (!list.is_array()) {
    throw RunnerError("request", where + " is not a list of tensor files (" + field::name +
                                     ", " + field::dtype + ", " + field::path + ")");
  }
  if (list.empty()) {
    throw RunnerError("request", where + " is empty: it lists one tensor file per model input");
  }
  std::vector<TensorFile> files;
  for (size_t i = 0; i < list.size(); ++i) {
    const Fields json(list[i], where + "[" + std::to_string(i) + "]");
    TensorFile file;
    file.name = json.text(field::name);
    file.path = json.text(field::path);
    const std::string dtype = json.text(field::dtype);
    const std::optional<DType> known = dtype_named(dtype);
    if (!known) {
      throw RunnerError("request", where + "[" + std::to_string(i) + "] ('" + file.name +
                                       "') has dtype '" + dtype + "', not one of " +
                                       dtype_names());
    }
    file.dtype = *known;
    files.push_back(std::move(file));
  }
  return files;
}

Json thermal_state(const ThermalState& state) {
  namespace field = protocol::thermal_state;
  Json temperatures = Json::object();
  for (const auto& [zone, celsius] : state.temperatures_c) temperatures[zone] = number(celsius);
  Json core_khz = Json::object();
  for (const auto& [core, khz] : state.core_khz) core_khz[core] = khz;
  Json json;
  json[field::temperatures_c] = temperatures;
  json[field::core_khz] = core_khz;
  json[field::time] = number(state.time);
  return json;
}

Json competing_load(const std::optional<CoreTimes>& times) {
  namespace field = protocol::competing_load;
  if (!times) return nullptr;
  Json json;
  json[field::cores] = times->cores;
  json[field::total_ticks] = times->total_ticks;
  json[field::busy_ticks] = times->busy_ticks;
  json[field::own_ticks] = times->own_ticks;
  return json;
}

Json labelled(const LabelledPass& pass) {
  namespace field = protocol::labelled;
  Json json;
  json[field::end_to_end_s] = numbers(pass.end_to_end_s);
  json[field::inference_s] = numbers(pass.inference_s);
  json[field::top_k] = pass.top_k;
  json[field::class_maps] = pass.class_maps ? Json(*pass.class_maps) : Json(nullptr);
  json[field::decoded_on_device] = false;  // the host preprocessed the images
  return json;
}

Json bytes_or_null(int64_t bytes) { return bytes < 0 ? Json(nullptr) : Json(bytes); }

// Said explicitly when asked, so the report shows why there is no share of peak.
Json peak_compute(bool asked) {
  namespace field = protocol::peak_compute;
  if (!asked) return nullptr;
  Json json;
  json[field::measured] = false;
  json[field::gflops_by_threads] = Json::object();
  json[field::method] = "not measured: the native runner has no peak probe (the Python "
                        "runner measures it where the device has Python and numpy)";
  return json;
}

Json paired(const PairedResult& result) {
  namespace field = protocol::paired_result;
  Json rounds = Json::array();
  for (const PairedRound& round : result.rounds) {
    Json json;
    json[protocol::paired_round::order] = round.order;
    json[protocol::paired_round::baseline_s] = numbers(round.baseline_s);
    json[protocol::paired_round::current_s] = numbers(round.current_s);
    rounds.push_back(std::move(json));
  }
  Json json;
  json[field::load_s] = number(result.load_s);
  json[field::warmup_samples_s] = numbers(result.warmup_samples_s);
  json[field::rounds] = std::move(rounds);
  json[field::stop_reason] = result.stop_reason;
  return json;
}

Json profile(const ProfileResult& result) {
  namespace field = protocol::profile_result;
  Json ops = Json::array();
  for (const ProfiledOp& op : result.ops) {
    Json json;
    json[protocol::profiled_op::op_type] = op.op_type;
    json[protocol::profiled_op::name] = op.name;
    json[protocol::profiled_op::time_s] = number(op.time_s);
    json[protocol::profiled_op::delegate] = op.delegate;
    ops.push_back(std::move(json));
  }
  const bool available = result.unavailable.empty();
  Json json;
  json[field::ops] = std::move(ops);
  json[field::total_s] = available ? number(result.total_s) : Json(nullptr);
  json[field::runs] = result.runs;
  json[field::source] = result.source;
  json[field::unavailable] = available ? Json(nullptr) : Json(result.unavailable);
  return json;
}

}  // namespace

Request parse_request(const std::string& text) {
  namespace field = protocol::request;
  const Json json = parse(text, "request");
  const Fields fields(json, "the request");
  check_version(json);
  Request request;
  request.framework = fields.text(field::framework);
  request.artifact = fields.text(field::artifact);
  request.threads = static_cast<int>(fields.number(field::threads));
  request.peak_asked = !fields.absent(field::peak_probe_threads) &&
                       !fields.get(field::peak_probe_threads).empty();
  request.timing = read_timing(fields);
  request.probe_inputs = read_tensor_files(fields, field::probe_inputs);
  if (!fields.absent(field::labelled_inputs))
    request.labelled_inputs = read_tensor_files(fields, field::labelled_inputs);
  request.paired = read_paired(fields);
  request.profile = read_profile(fields);
  request.class_map = read_class_map(fields);
  return request;
}

std::string result_json(const Result& result) {
  namespace field = protocol::result;
  Json json;
  json[field::ok] = true;
  json[field::protocol_version] = kProtocolVersion;
  json[field::runner] = protocol::runner::native;
  json[field::runtime] = result.runtime;
  json[field::framework] = kFrameworkName;
  json[field::framework_version] = result.framework_version;
  json[field::threads] = result.threads;
  json[field::load_s] = number(result.load_s);
  json[field::first_inference_s] = number(result.first_inference_s);
  json[field::warmup_samples_s] = numbers(result.warmup_samples_s);
  json[field::samples_s] = numbers(result.samples_s);
  json[field::stop_reason] = result.stop_reason;
  Json& probe_outputs = json[field::probe_outputs] = Json::array();
  for (const auto& probe : result.probe_outputs) {
    Json outputs = Json::array();
    for (const auto& output : probe) outputs.push_back(numbers(output));
    probe_outputs.push_back(std::move(outputs));
  }
  json[field::output_names] = result.output_names;
  json[field::labelled] = result.labelled ? labelled(*result.labelled) : Json(nullptr);
  Json& thermal = json[field::thermal];
  thermal[protocol::thermal::before] = thermal_state(result.thermal_before);
  thermal[protocol::thermal::after] = thermal_state(result.thermal_after);
  json[field::competing_load] = competing_load(result.competing_load);
  Json& rss = json[field::peak_rss_bytes];
  rss[protocol::peak_rss_bytes::after_load] = bytes_or_null(result.rss_after_load);
  rss[protocol::peak_rss_bytes::after_timing] = bytes_or_null(result.rss_after_timing);
  json[field::notes] = result.notes;
  json[field::peak_compute] = peak_compute(result.peak_asked);
  json[field::paired] = result.paired ? paired(*result.paired) : Json(nullptr);
  json[field::profile] = result.profile ? profile(*result.profile) : Json(nullptr);
  return line(json);
}

std::string failure_json(const std::string& stage, const std::string& error) {
  namespace field = protocol::failure;
  Json json;
  json[field::ok] = false;
  json[field::protocol_version] = kProtocolVersion;
  json[field::runner] = protocol::runner::native;
  json[field::framework] = kFrameworkName;
  json[field::stage] = stage;
  json[field::error] = error;
  return line(json);
}

std::string describe_json() {
  namespace field = protocol::describe;
  Json json;
  json[field::protocol_version] = kProtocolVersion;
  json[field::runner] = protocol::runner::native;
  json[field::framework] = kFrameworkName;
  return line(json);
}

StatisticsQuery parse_statistics_query(const std::string& text) {
  const Json json = parse(text, "statistics query");
  StatisticsQuery query;
  query.samples = json.at("samples").get<std::vector<double>>();
  query.confidence = json.at("confidence_level").get<double>();
  query.probabilities = json.value("probabilities", std::vector<double>{});
  return query;
}

std::string statistics_json(const StatisticsAnswer& answer) {
  Json json;
  json["lower"] = answer.lower;
  json["upper"] = answer.upper;
  json["median"] = number(answer.median);
  json["relative_half_width"] = number(answer.relative_half_width);
  json["normal_quantiles"] = numbers(answer.normal_quantiles);
  return line(json);
}

}  // namespace aiot
