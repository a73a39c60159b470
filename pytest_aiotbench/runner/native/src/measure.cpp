#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <ostream>
#include <sstream>
#include <vector>

#include "json.hpp"
#include "npy.hpp"
#include "stats.hpp"
#include "system.hpp"

namespace aiot {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The stopping rule as the host sets it; its defaults live on the host (protocol.Timing).
struct Timing {
  std::string mode;  // "rigorous", or "paper": one end-to-end pass, first image included
  double warmup_s, min_time_s, max_time_s, target_rel_ci, confidence;
  long warmup_min_samples, min_samples, max_samples;
};

double required_number(const Json& timing, const char* key) {
  if (!timing[key].is_null() && timing[key].type() == Json::Type::Number) return timing[key].number();
  throw RunnerError("request", std::string("the request's timing has no number ") + key);
}

Timing read_timing(const Json& json) {
  if (json.is_null() || json.type() != Json::Type::Object)
    throw RunnerError("request", "the request has no timing object");
  Timing t;
  t.mode = json["mode"].is_null() ? "" : json["mode"].string();
  t.warmup_s = required_number(json, "warmup_s");
  t.warmup_min_samples = static_cast<long>(required_number(json, "warmup_min_samples"));
  t.min_samples = static_cast<long>(required_number(json, "min_samples"));
  t.min_time_s = required_number(json, "min_time_s");
  t.max_time_s = required_number(json, "max_time_s");
  t.max_samples = static_cast<long>(required_number(json, "max_samples"));
  t.target_rel_ci = required_number(json, "target_rel_ci");
  t.confidence = required_number(json, "confidence");
  return t;
}

// One inference per sample on the steady clock, until the median is known within
// `target` (checked on a geometric schedule: a check costs a sort) or a cap is hit.
std::string time_loop(Backend& backend, const std::vector<int64_t>& shape, const float* input,
                      std::vector<float>& output, long min_samples, double min_time_s,
                      double max_time_s, long max_samples, double target, double confidence,
                      std::vector<double>& samples) {
  const Clock::time_point started = Clock::now();
  long next_check = std::max(min_samples, 10L);
  while (true) {
    const Clock::time_point t0 = Clock::now();
    backend.infer(shape, input, output);
    samples.push_back(seconds_since(t0));
    const double elapsed = seconds_since(started);
    const long n = static_cast<long>(samples.size());
    if (n >= max_samples) return "sample_cap";
    if (elapsed >= max_time_s) return "time_cap";
    if (n < min_samples || elapsed < min_time_s) continue;
    if (target <= 0) return "done";
    if (n >= next_check) {
      next_check = n + std::max(1L, n / 10);
      if (median_relative_half_width(samples, confidence) <= target) return "converged";
    }
  }
}

struct LabelledPass {
  std::vector<double> end_to_end_s, inference_s;
  std::vector<std::vector<long>> top_k;
};

// The host preprocessed the images (the one `preprocess`) into one float32 tensor file;
// per image: read it from the file (end to end), then infer (inference only).
LabelledPass labelled_pass(Backend& backend, const NpyArray& images, std::vector<float>& output,
                           size_t top_k) {
  LabelledPass pass;
  const std::vector<int64_t> shape = images.row_shape();
  std::vector<float> input(images.row_size());
  for (int64_t i = 0; i < images.rows(); ++i) {
    const Clock::time_point t0 = Clock::now();
    std::copy_n(images.row(i), input.size(), input.begin());
    const Clock::time_point t1 = Clock::now();
    backend.infer(shape, input.data(), output);
    const Clock::time_point t2 = Clock::now();
    pass.end_to_end_s.push_back(std::chrono::duration<double>(t2 - t0).count());
    pass.inference_s.push_back(std::chrono::duration<double>(t2 - t1).count());
    // Highest first, ties to the lower class index (numpy's stable argsort of -logits).
    std::vector<long> order(output.size());
    std::iota(order.begin(), order.end(), 0L);
    const size_t k = std::min(top_k, order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                      [&](long a, long b) {
                        return output[a] > output[b] || (output[a] == output[b] && a < b);
                      });
    order.resize(k);
    pass.top_k.push_back(order);
  }
  return pass;
}

// Outputs for every probe, and the time of the first call (lazy allocation, packing).
double answer_probes(Backend& backend, const NpyArray& probes, std::vector<float>& output,
                     std::vector<std::vector<double>>& outputs) {
  const std::vector<int64_t> shape = probes.row_shape();
  std::vector<float> input(probes.row_size());
  double first_s = 0;
  for (int64_t i = 0; i < probes.rows(); ++i) {
    std::copy_n(probes.row(i), input.size(), input.begin());
    const Clock::time_point t0 = Clock::now();
    backend.infer(shape, input.data(), output);
    if (i == 0) first_s = seconds_since(t0);
    outputs.emplace_back(output.begin(), output.end());
  }
  return first_s;
}

void maybe_inject_fault(const char* stage) {
  // Fault injection for the host's crash handling (AIOT_RUNNER_FAULT=<framework>:segfault-
  // after-<stage>): a real SIGSEGV in the real binary, never set in normal use.
  const char* fault = std::getenv("AIOT_RUNNER_FAULT");
  if (fault != nullptr &&
      std::string(fault) == std::string(kFrameworkName) + ":segfault-after-" + stage) {
    std::fprintf(stderr, "aiot_runner: AIOT_RUNNER_FAULT=%s: raising SIGSEGV\n", fault);
    std::fflush(stderr);
    std::raise(SIGSEGV);
  }
}

void write_failure(std::ostream& out, const std::string& stage, const std::string& error) {
  JsonWriter json(out);
  json.begin_object()
      .key("ok").value(false)
      .key("protocol_version").value(kProtocolVersion)
      .key("runner").value("native")
      .key("framework").value(kFrameworkName)
      .key("stage").value(stage)
      .key("error").value(error)
      .end_object();
  out << '\n';
}

std::unique_ptr<NpyArray> open_inputs(const std::string& path, const char* what) {
  try {
    return std::make_unique<NpyArray>(path);
  } catch (const std::exception& error) {
    throw RunnerError("inputs", std::string("cannot read ") + what + " " + path + ": " +
                                    error.what());
  }
}

void measure(const Json& request, Backend& backend, std::ostream& out) {
  const Json& version = request["protocol_version"];
  if (version.is_null() || static_cast<int>(version.number()) != kProtocolVersion) {
    throw RunnerError("protocol",
                      "the host speaks runner protocol " +
                          (version.is_null() ? std::string("1 (unversioned)")
                                             : std::to_string(static_cast<int>(version.number()))) +
                          ", this native runner speaks " + std::to_string(kProtocolVersion) +
                          ": rebuild it with the plugin's version (aiotbench-build-runner)");
  }
  const std::string framework = request["framework"].string();
  if (framework != kFrameworkName)
    throw RunnerError("request", "this runner runs " + std::string(kFrameworkName) +
                                     ", the request asks for " + framework);
  const int threads = static_cast<int>(request["threads"].number());
  const Json& peak_probe_threads = request["peak_probe_threads"];
  const bool peak_asked = !peak_probe_threads.is_null() && !peak_probe_threads.array().empty();
  const Timing timing = read_timing(request["timing"]);
  auto probes = open_inputs(request["probe_inputs"].string(), "probe inputs");
  std::unique_ptr<NpyArray> labelled_inputs;
  if (!request["labelled_inputs"].is_null())
    labelled_inputs = open_inputs(request["labelled_inputs"].string(), "labelled inputs");

  const Clock::time_point load_started = Clock::now();
  backend.load(request["artifact"].string(), threads);
  const double load_s = seconds_since(load_started);
  const int64_t rss_after_load = peak_resident_bytes();
  maybe_inject_fault("load");

  std::vector<float> output;
  std::vector<std::vector<double>> probe_outputs;
  std::vector<double> warmup, samples;
  std::string stop_reason;
  double first_inference_s = 0;
  LabelledPass labelled;
  ThermalState before, after;
  if (timing.mode == "paper") {
    if (!labelled_inputs) throw RunnerError("request", "the paper protocol needs labelled inputs");
    // Straight after loading, one pass over the images, first image included, no warm-up.
    before = read_thermal_state();
    labelled = labelled_pass(backend, *labelled_inputs, output, 5);
    after = read_thermal_state();
    answer_probes(backend, *probes, output, probe_outputs);
    first_inference_s = labelled.end_to_end_s.empty() ? 0 : labelled.end_to_end_s[0];
    samples = labelled.end_to_end_s;
    stop_reason = "one_pass";
  } else if (timing.mode == "rigorous") {
    first_inference_s = answer_probes(backend, *probes, output, probe_outputs);
    const std::vector<int64_t> shape = probes->row_shape();
    std::vector<float> timed_input(probes->row(0), probes->row(0) + probes->row_size());
    time_loop(backend, shape, timed_input.data(), output, timing.warmup_min_samples,
              timing.warmup_s, timing.warmup_s, 1000000, 0, timing.confidence, warmup);
    if (labelled_inputs) labelled = labelled_pass(backend, *labelled_inputs, output, 5);
    before = read_thermal_state();
    stop_reason = time_loop(backend, shape, timed_input.data(), output, timing.min_samples,
                            timing.min_time_s, timing.max_time_s, timing.max_samples,
                            timing.target_rel_ci, timing.confidence, samples);
    after = read_thermal_state();
  } else {
    throw RunnerError("request", "unknown timing mode '" + timing.mode + "'");
  }
  const int64_t rss_after_timing = peak_resident_bytes();

  JsonWriter json(out);
  json.begin_object()
      .key("ok").value(true)
      .key("protocol_version").value(kProtocolVersion)
      .key("runner").value("native")
      .key("runtime").value(runtime_description())
      .key("framework").value(kFrameworkName)
      .key("framework_version").value(backend.version())
      .key("threads").value(threads)
      .key("load_s").value(load_s)
      .key("first_inference_s").value(first_inference_s)
      .key("warmup_samples_s").array(warmup)
      .key("samples_s").array(samples)
      .key("stop_reason").value(stop_reason)
      .key("probe_outputs").begin_array();
  for (const auto& row : probe_outputs) json.array(row);
  json.end_array().key("labelled");
  if (labelled_inputs) {
    json.begin_object()
        .key("end_to_end_s").array(labelled.end_to_end_s)
        .key("inference_s").array(labelled.inference_s)
        .key("top_k").begin_array();
    for (const auto& row : labelled.top_k) {
      json.begin_array();
      for (long index : row) json.value(static_cast<int64_t>(index));
      json.end_array();
    }
    json.end_array().key("decoded_on_device").value(false).end_object();
  } else {
    json.null();
  }
  json.key("thermal").begin_object().key("before");
  write_thermal_state(json, before);
  json.key("after");
  write_thermal_state(json, after);
  json.end_object().key("peak_rss_bytes").begin_object();
  auto bytes_or_null = [&](int64_t bytes) {
    if (bytes < 0) json.null(); else json.value(bytes);
  };
  json.key("after_load");
  bytes_or_null(rss_after_load);
  json.key("after_timing");
  bytes_or_null(rss_after_timing);
  json.end_object().key("notes").array(backend.notes()).key("peak_compute");
  if (peak_asked) {
    // Said explicitly, so the report shows why there is no share of peak for this device.
    json.begin_object()
        .key("measured").value(false)
        .key("gflops_by_threads").begin_object().end_object()
        .key("method").value("not measured: the native runner has no peak probe (the Python "
                             "runner measures it where the device has Python and numpy)")
        .end_object();
  } else {
    json.null();
  }
  json.end_object();
  out << '\n';
}

}  // namespace

int serve(const std::string& request_text, Backend& backend, std::ostream& out) {
  // The result is built whole before it is written: a failure half-way never leaves
  // half a document on stdout.
  std::ostringstream result;
  try {
    Json request;
    try {
      request = Json::parse(request_text);
    } catch (const std::exception& error) {
      throw RunnerError("request", std::string("cannot parse the request: ") + error.what());
    }
    measure(request, backend, result);
  } catch (const RunnerError& error) {
    write_failure(out, error.stage(), error.what());
    return 2;
  } catch (const std::exception& error) {
    write_failure(out, "runner", error.what());
    return 3;
  }
  out << result.str();
  return 0;
}

int describe_median_bounds(const std::string& request_text, std::ostream& out) {
  const Json request = Json::parse(request_text);
  std::vector<double> samples;
  for (const auto& value : request["samples"].array()) samples.push_back(value.number());
  const double confidence = request["confidence"].number();
  const auto bounds = median_confidence_bounds(static_cast<long>(samples.size()), confidence);
  JsonWriter json(out);
  json.begin_object()
      .key("lower").value(static_cast<int64_t>(bounds.first))
      .key("upper").value(static_cast<int64_t>(bounds.second))
      .key("relative_half_width").value(median_relative_half_width(samples, confidence))
      .end_object();
  out << '\n';
  return 0;
}

}  // namespace aiot
