#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <numeric>
#include <ostream>
#include <vector>

#include "npy.hpp"
#include "protocol_io.hpp"
#include "stats.hpp"
#include "system.hpp"
#include "test_faults.hpp"

namespace aiot {

namespace {

using Clock = std::chrono::steady_clock;
using Outputs = std::vector<std::vector<float>>;  // every output of one inference

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The request's tensor files of one kind (probes or labelled items), one per model input,
// opened and checked against what the request says they hold.
struct TensorFiles {
  std::vector<TensorFile> files;  // as the request states them
  std::vector<std::unique_ptr<NpyArray>> arrays;
  int64_t rows() const { return arrays.empty() ? 0 : arrays[0]->rows(); }
};

// One row of every input, copied out of the files into buffers of its own (a framework
// never reads a file's mapping), and the InputTensor views handed to infer(), built once
// so that a timed call allocates nothing.
class InputRow {
 public:
  explicit InputRow(const TensorFiles& files) : files_(files) {
    buffers_.reserve(files.arrays.size());
    for (const auto& array : files.arrays) buffers_.emplace_back(array->row_bytes());
    for (size_t i = 0; i < files.arrays.size(); ++i) {
      const NpyArray& array = *files.arrays[i];
      tensors_.push_back({files.files[i].name, array.dtype(), array.row_shape(),
                          buffers_[i].data(), buffers_[i].size()});
    }
  }
  InputRow(const InputRow&) = delete;
  InputRow& operator=(const InputRow&) = delete;

  void read(int64_t row) {
    for (size_t i = 0; i < buffers_.size(); ++i) {
      std::memcpy(buffers_[i].data(), files_.arrays[i]->row(row), buffers_[i].size());
    }
  }
  const std::vector<InputTensor>& tensors() const { return tensors_; }

 private:
  const TensorFiles& files_;
  std::vector<std::vector<unsigned char>> buffers_;
  std::vector<InputTensor> tensors_;  // points into buffers_
};

// One inference per sample on the steady clock, until the median is known within
// `target` (checked on a geometric schedule: a check costs a sort) or a cap is hit.
std::string time_loop(Backend& backend, const std::vector<InputTensor>& inputs, Outputs& outputs,
                      long min_samples, double min_time_s, double max_time_s, long max_samples,
                      double target, double confidence, std::vector<double>& samples) {
  const Clock::time_point started = Clock::now();
  long next_check = std::max(min_samples, 10L);
  while (true) {
    const Clock::time_point t0 = Clock::now();
    backend.infer(inputs, outputs);
    samples.push_back(seconds_since(t0));
    const double elapsed = seconds_since(started);
    const long n = static_cast<long>(samples.size());
    if (n >= max_samples) return protocol::stop_reason::sample_cap;
    if (elapsed >= max_time_s) return protocol::stop_reason::time_cap;
    if (n < min_samples || elapsed < min_time_s) continue;
    if (target <= 0) return protocol::stop_reason::done;
    if (n >= next_check) {
      next_check = n + std::max(1L, n / 10);
      if (median_relative_half_width(samples, confidence) <= target)
        return protocol::stop_reason::converged;
    }
  }
}

// The argmax along the request's axis at every other position, in C order; ties to the
// lower class, as numpy's argmax.
std::vector<long> class_of_each_position(const std::vector<float>& output,
                                         const ClassMapRequest& map) {
  int64_t outer = 1, inner = 1;
  for (long axis = 0; axis < static_cast<long>(map.shape.size()); ++axis) {
    if (axis < map.axis) outer *= map.shape[axis];
    if (axis > map.axis) inner *= map.shape[axis];
  }
  const int64_t classes = map.shape[map.axis];
  if (static_cast<int64_t>(output.size()) != outer * classes * inner) {
    throw RunnerError("infer", "the first output has " + std::to_string(output.size()) +
                                   " values, not the class map's " +
                                   std::to_string(outer * classes * inner));
  }
  std::vector<long> classes_found(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o) {
    const float* block = output.data() + o * classes * inner;
    for (int64_t i = 0; i < inner; ++i) {
      long best = 0;
      for (int64_t c = 1; c < classes; ++c) {
        if (block[c * inner + i] > block[best * inner + i]) best = static_cast<long>(c);
      }
      classes_found[static_cast<size_t>(o * inner + i)] = best;
    }
  }
  return classes_found;
}

// The labelled items as tensor files, one per model input (images the host preprocessed
// with the one `preprocess`, or labelled arrays); per item: read its row of every file (end
// to end), then infer (inference only). top_k is the first output's.
LabelledPass labelled_pass(Backend& backend, const TensorFiles& items, Outputs& outputs,
                           size_t top_k, const std::optional<ClassMapRequest>& class_map) {
  LabelledPass pass;
  if (class_map) pass.class_maps.emplace();
  InputRow input(items);
  for (int64_t i = 0; i < items.rows(); ++i) {
    const Clock::time_point t0 = Clock::now();
    input.read(i);
    const Clock::time_point t1 = Clock::now();
    backend.infer(input.tensors(), outputs);
    const Clock::time_point t2 = Clock::now();
    if (outputs.empty()) throw RunnerError("infer", "the artifact answered no output");
    const std::vector<float>& output = outputs[0];
    pass.end_to_end_s.push_back(std::chrono::duration<double>(t2 - t0).count());
    pass.inference_s.push_back(std::chrono::duration<double>(t2 - t1).count());
    if (class_map) {
      pass.top_k.emplace_back();
      pass.class_maps->push_back(class_of_each_position(output, *class_map));
      continue;
    }
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

// Every output of every probe, and the time of the first call (lazy allocation, packing).
double answer_probes(Backend& backend, const TensorFiles& probes, Outputs& outputs,
                     std::vector<std::vector<std::vector<double>>>& answers) {
  InputRow input(probes);
  double first_s = 0;
  for (int64_t i = 0; i < probes.rows(); ++i) {
    input.read(i);
    const Clock::time_point t0 = Clock::now();
    backend.infer(input.tensors(), outputs);
    if (i == 0) first_s = seconds_since(t0);
    std::vector<std::vector<double>>& answer = answers.emplace_back();
    for (const std::vector<float>& output : outputs)
      answer.emplace_back(output.begin(), output.end());
  }
  return first_s;
}

// Opens one kind of the request's tensor files and checks them against the request and
// each other: the dtype the request states, a first axis, the same rows in all.
TensorFiles open_tensor_files(const std::vector<TensorFile>& files, const char* what) {
  TensorFiles opened;
  opened.files = files;
  for (const TensorFile& file : files) {
    const std::string which = std::string(what) + " '" + file.name + "'";
    try {
      opened.arrays.push_back(std::make_unique<NpyArray>(file.path));
    } catch (const std::exception& error) {
      // NpyArray's messages name the file.
      throw RunnerError("inputs", "cannot read " + which + ": " + error.what());
    }
    const NpyArray& array = *opened.arrays.back();
    if (array.dtype() != file.dtype) {
      throw RunnerError("inputs", which + ": the request says " + dtype_name(file.dtype) +
                                      ", " + file.path + " holds " + dtype_name(array.dtype()) +
                                      " (" + array.descr() + ")");
    }
    if (array.shape().empty()) {
      throw RunnerError("inputs", which + ": " + file.path +
                                      " holds a scalar; the runner reads rows along a first axis");
    }
    if (array.rows() != opened.rows()) {
      throw RunnerError("inputs", std::string(what) + " disagree on their rows: '" +
                                      files.front().name + "' has " +
                                      std::to_string(opened.rows()) + ", '" + file.name +
                                      "' has " + std::to_string(array.rows()));
    }
  }
  return opened;
}

// The request's input tensors, opened before anything is loaded.
struct Inputs {
  TensorFiles probes;
  std::optional<TensorFiles> labelled;
  std::optional<ClassMapRequest> class_map;  // labelled items answered by class maps
};

Inputs open_request_inputs(const Request& request) {
  if (request.framework != kFrameworkName)
    throw RunnerError("request", "this runner runs " + std::string(kFrameworkName) +
                                     ", the request asks for " + request.framework);
  Inputs inputs;
  inputs.probes = open_tensor_files(request.probe_inputs, "probe inputs");
  if (inputs.probes.rows() == 0) throw RunnerError("inputs", "the probe inputs hold no rows");
  inputs.class_map = request.class_map;
  if (request.labelled_inputs) {
    inputs.labelled = open_tensor_files(*request.labelled_inputs, "labelled inputs");
    const size_t labelled = inputs.labelled->files.size();
    const size_t probes = inputs.probes.files.size();
    if (labelled != probes) {
      throw RunnerError("inputs", "the request gives " + std::to_string(probes) +
                                      " probe inputs and " + std::to_string(labelled) +
                                      " labelled inputs; both are one per model input");
    }
  }
  return inputs;
}

// Straight after loading, one pass over the images, first image included, no warm-up.
void paper_pass(Backend& backend, const Inputs& inputs, Result& result) {
  if (!inputs.labelled) throw RunnerError("request", "the paper protocol needs labelled inputs");
  Outputs outputs;
  result.thermal_before = read_thermal_state();
  const std::optional<CoreTimes> load_before = read_core_times();
  result.labelled = labelled_pass(backend, *inputs.labelled, outputs, 5, inputs.class_map);
  result.competing_load = core_times_between(load_before, read_core_times());
  result.thermal_after = read_thermal_state();
  answer_probes(backend, inputs.probes, outputs, result.probe_outputs);
  const auto& end_to_end = result.labelled->end_to_end_s;
  result.first_inference_s = end_to_end.empty() ? 0 : end_to_end[0];
  result.samples_s = end_to_end;
  result.stop_reason = protocol::stop_reason::one_pass;
}

// Probes (the first inference timed alone: it pays for lazy allocation and packing),
// warm-up, the labelled pass, then samples until the stopping rule is met, on the first
// probe row of every input. `outputs` is the backend's own buffer, kept by the caller for
// paired timing.
void rigorous_timing(Backend& backend, const Inputs& inputs, const Timing& timing,
                     Outputs& outputs, Result& result) {
  result.first_inference_s =
      answer_probes(backend, inputs.probes, outputs, result.probe_outputs);
  InputRow timed_input(inputs.probes);
  timed_input.read(0);
  time_loop(backend, timed_input.tensors(), outputs, timing.warmup_min_samples,
            timing.warmup_s, timing.warmup_s, 1000000, 0, timing.confidence,
            result.warmup_samples_s);
  if (inputs.labelled)
    result.labelled = labelled_pass(backend, *inputs.labelled, outputs, 5, inputs.class_map);
  result.thermal_before = read_thermal_state();
  const std::optional<CoreTimes> load_before = read_core_times();
  result.stop_reason = time_loop(backend, timed_input.tensors(), outputs, timing.min_samples,
                                 timing.min_time_s, timing.max_time_s, timing.max_samples,
                                 timing.target_rel_ci, timing.confidence, result.samples_s);
  result.competing_load = core_times_between(load_before, read_core_times());
  result.thermal_after = read_thermal_state();
}

// One side's block of a paired round: at least its samples and its time, at least one sample.
void time_block(Backend& backend, const std::vector<InputTensor>& inputs, Outputs& outputs,
                const PairedRequest& rule, std::vector<double>& samples) {
  const Clock::time_point started = Clock::now();
  do {
    const Clock::time_point t0 = Clock::now();
    backend.infer(inputs, outputs);
    samples.push_back(seconds_since(t0));
  } while (static_cast<long>(samples.size()) < rule.block_min_samples ||
           seconds_since(started) < rule.block_min_time_s);
}

double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return median_of_sorted(values);
}

// After each round; empty while the rounds go on. The same checks, in the same order, as
// aiot_runner.py's: converged, then the round cap, then the time cap (never before 2 rounds:
// one ratio has no spread to judge).
std::string paired_stop_reason(const std::vector<double>& ratios, const PairedRequest& rule,
                               double elapsed_s, double confidence) {
  const long count = static_cast<long>(ratios.size());
  if (count >= rule.min_rounds &&
      median_relative_half_width(ratios, confidence) <= rule.target_rel_ci)
    return protocol::stop_reason::converged;
  if (count >= rule.max_rounds) return protocol::stop_reason::sample_cap;
  if (count >= 2 && elapsed_s >= rule.max_time_s) return protocol::stop_reason::time_cap;
  return "";
}

// The baseline's artifact in a second instance of the same backend, timed beside this one in
// rounds whose order alternates (A B, B A, A B, ...): drift over the run (thermal, other
// load) hits both sides alike, and the host judges the per-round ratio of medians. Runs
// after the normal timing, so the normal result is untouched by the second model.
PairedResult paired_timing(Backend& timed, Outputs& timed_outputs, const Request& request,
                           const TensorFiles& probes, std::vector<std::string>& notes) {
  const PairedRequest& rule = *request.paired;
  const Timing& timing = request.timing;
  PairedResult paired;
  const bool quiet = timed.spins_when_idle();
  std::unique_ptr<Backend> baseline = make_backend();
  if (quiet) baseline->quiet_idle_threads();
  const Clock::time_point load_started = Clock::now();
  try {
    baseline->load(rule.artifact, request.threads);
  } catch (const std::exception& error) {
    // Whatever the framework threw, the host must see that the baseline failed to load.
    throw RunnerError("load", "cannot load the baseline's artifact " + rule.artifact + ": " +
                                  error.what());
  }
  paired.load_s = seconds_since(load_started);
  inject_test_fault("baseline-load");

  InputRow input(probes);
  input.read(0);
  const std::vector<InputTensor>& inputs = input.tensors();
  // The first call pays lazy allocation and packing: untimed, as in aiot_runner.py.
  auto warm_up = [&](Backend& side, Outputs& outputs, std::vector<double>& samples) {
    side.infer(inputs, outputs);
    time_loop(side, inputs, outputs, timing.warmup_min_samples, timing.warmup_s,
              timing.warmup_s, 1000000, 0, timing.confidence, samples);
  };
  // Both sides of the rounds alike: where idle threads spin, this artifact is loaded again,
  // quiet as the baseline (the instance timed above keeps the framework's defaults).
  std::unique_ptr<Backend> quiet_current;
  Outputs quiet_outputs;
  if (quiet) {
    quiet_current = make_backend();
    quiet_current->quiet_idle_threads();
    quiet_current->load(request.artifact, request.threads);
    std::vector<double> unused_warmup;  // the timed instance's warm-up is the one reported
    warm_up(*quiet_current, quiet_outputs, unused_warmup);
    notes.push_back(std::string("paired rounds: both artifacts loaded again with ") +
                    kFrameworkName + "'s idle spin-wait off (an idle pool that spins takes the "
                    "cores the timed side needs)");
  }
  Backend& current = quiet ? *quiet_current : timed;
  Outputs& current_outputs = quiet ? quiet_outputs : timed_outputs;
  Outputs baseline_outputs;
  warm_up(*baseline, baseline_outputs, paired.warmup_samples_s);

  std::vector<double> ratios;  // per round: current's median over the baseline's
  const Clock::time_point started = Clock::now();
  while (paired.stop_reason.empty()) {
    PairedRound round;
    const bool baseline_first = paired.rounds.size() % 2 == 0;
    round.order = baseline_first ? protocol::paired_order::baseline_first
                                 : protocol::paired_order::current_first;
    auto time_baseline = [&] {
      time_block(*baseline, inputs, baseline_outputs, rule, round.baseline_s);
    };
    auto time_current = [&] {
      time_block(current, inputs, current_outputs, rule, round.current_s);
    };
    if (baseline_first) {
      time_baseline();
      time_current();
    } else {
      time_current();
      time_baseline();
    }
    ratios.push_back(median_of(round.current_s) / median_of(round.baseline_s));
    paired.rounds.push_back(std::move(round));
    paired.stop_reason =
        paired_stop_reason(ratios, rule, seconds_since(started), timing.confidence);
  }
  return paired;
}

// The per-operator profile: a fresh instance with the framework's profiler on, a few untimed
// inferences, then `runs` profiled ones on the host's clock. After every timing, so the
// profiler's cost (2-4x per call) never touches a timed sample; a fresh instance, so neither
// does anything the profiler leaves behind. Whatever fails here is reported as the profile's
// reason, never as the run's failure: the timing already measured is kept.
ProfileResult profile_pass(const Request& request, const TensorFiles& probes) {
  const ProfileRequest& rule = *request.profile;
  ProfileResult profile;
  try {
    std::unique_ptr<Backend> profiled = make_backend();
    profile.unavailable = profiled->enable_profiling();
    if (!profile.unavailable.empty()) return profile;
    profile.source = profiled->profile_source();
    profiled->load(request.artifact, request.threads);
    InputRow input(probes);
    input.read(0);
    Outputs outputs;
    for (long i = 0; i < rule.warmup_runs; ++i) profiled->infer(input.tensors(), outputs);
    profiled->start_profile();
    double total_s = 0;
    for (long i = 0; i < rule.runs; ++i) {
      const Clock::time_point t0 = Clock::now();
      profiled->infer(input.tensors(), outputs);
      total_s += seconds_since(t0);
    }
    const std::vector<OpRecord> records = profiled->stop_profile();
    // One entry per operator, in the order first seen, its time the mean per inference.
    for (const OpRecord& record : records) {
      auto same = [&](const ProfiledOp& op) {
        return op.name == record.name && op.op_type == record.op_type &&
               op.delegate == record.delegate;
      };
      auto found = std::find_if(profile.ops.begin(), profile.ops.end(), same);
      if (found == profile.ops.end())
        profile.ops.push_back({record.op_type, record.name, record.delegate, record.time_s});
      else
        found->time_s += record.time_s;
    }
    for (ProfiledOp& op : profile.ops) op.time_s /= static_cast<double>(rule.runs);
    profile.runs = rule.runs;
    profile.total_s = total_s / static_cast<double>(rule.runs);
    if (profile.ops.empty())
      profile.unavailable = profile.source + " recorded no operator in " +
                            std::to_string(rule.runs) + " inferences";
  } catch (const std::exception& error) {
    profile.ops.clear();
    profile.unavailable = std::string("the profiling pass failed: ") + error.what();
  }
  if (!profile.unavailable.empty()) profile.runs = 0;
  return profile;
}

Result measure(const Request& request, Backend& backend) {
  if (request.paired && request.timing.mode == protocol::timing_mode::paper)
    throw RunnerError("request", "paired timing needs the rigorous timing mode");
  const Inputs inputs = open_request_inputs(request);
  Result result;
  result.threads = request.threads;
  result.peak_asked = request.peak_asked;
  const Clock::time_point load_started = Clock::now();
  backend.load(request.artifact, request.threads);
  result.load_s = seconds_since(load_started);
  result.rss_after_load = peak_resident_bytes();
  inject_test_fault("load");
  Outputs outputs;
  if (request.timing.mode == protocol::timing_mode::paper)
    paper_pass(backend, inputs, result);
  else if (request.timing.mode == protocol::timing_mode::rigorous)
    rigorous_timing(backend, inputs, request.timing, outputs, result);
  else
    throw RunnerError("request", "unknown timing mode '" + request.timing.mode + "'");
  result.rss_after_timing = peak_resident_bytes();
  // Read after the probes: a PyTorch Mobile module tells its outputs only by answering.
  result.output_names = backend.output_names();
  const size_t answered = result.probe_outputs.front().size();
  if (result.output_names.size() != answered) {
    throw RunnerError("infer", std::string(kFrameworkName) + ": the artifact names " +
                                   std::to_string(result.output_names.size()) +
                                   " outputs and answers " + std::to_string(answered));
  }
  std::vector<std::string> paired_notes;
  if (request.paired)
    result.paired = paired_timing(backend, outputs, request, inputs.probes, paired_notes);
  if (request.profile) result.profile = profile_pass(request, inputs.probes);
  result.runtime = runtime_description();
  result.framework_version = backend.version();
  result.notes = backend.notes();
  result.notes.insert(result.notes.end(), paired_notes.begin(), paired_notes.end());
  return result;
}

}  // namespace

int serve(const std::string& request_text, Backend& backend, std::ostream& out) {
  // The result is built whole before it is written: a failure half-way never leaves
  // half a document on stdout.
  std::string result;
  try {
    result = result_json(measure(parse_request(request_text), backend));
  } catch (const RunnerError& error) {
    out << failure_json(error.stage(), error.what());
    return 2;
  } catch (const std::exception& error) {
    out << failure_json("runner", error.what());
    return 3;
  }
  out << result;
  return 0;
}

std::string describe() { return describe_json(); }

int describe_statistics(const std::string& request_text, std::ostream& out) {
  const StatisticsQuery query = parse_statistics_query(request_text);
  StatisticsAnswer answer;
  std::vector<double> ordered = query.samples;
  std::sort(ordered.begin(), ordered.end());
  const auto bounds = median_confidence_bounds(static_cast<long>(ordered.size()),
                                               query.confidence);
  answer.lower = bounds.first;
  answer.upper = bounds.second;
  answer.median = median_of_sorted(ordered);
  answer.relative_half_width = median_relative_half_width(query.samples, query.confidence);
  for (double p : query.probabilities) answer.normal_quantiles.push_back(normal_quantile(p));
  out << statistics_json(answer);
  return 0;
}

}  // namespace aiot
