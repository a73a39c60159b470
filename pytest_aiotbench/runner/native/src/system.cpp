#include "system.hpp"

#include <dirent.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace aiot {

namespace {

std::vector<std::string> sorted_entries(const std::string& folder) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(folder.c_str())) {
    while (dirent* entry = ::readdir(dir)) names.emplace_back(entry->d_name);
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool read_line(const std::string& path, std::string& line) {
  std::ifstream in(path);
  return static_cast<bool>(std::getline(in, line));
}

bool all_digits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), ::isdigit);
}

// /proc/stat's per-core columns, in order: user nice system idle iowait irq softirq steal
// (guest time is inside user already); idle and iowait are the time no one ran.
constexpr size_t kStatColumns = 8;
constexpr size_t kIdle = 3, kIowait = 4;

std::vector<int> affinity_cores() {
  std::vector<int> cores;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return cores;
  for (int core = 0; core < CPU_SETSIZE; ++core)
    if (CPU_ISSET(core, &set)) cores.push_back(core);
  return cores;
}

// utime + stime: fields 14 and 15, counted after the command name (which may hold spaces).
std::optional<int64_t> own_cpu_ticks() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t name_end = text.rfind(')');
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(name_end + 1));
  std::string field;
  int64_t utime = -1, stime = -1;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::atoll(field.c_str());
    if (index == 15) stime = std::atoll(field.c_str());
  }
  if (utime < 0 || stime < 0) return std::nullopt;
  return utime + stime;
}

}  // namespace

std::optional<CoreTimes> read_core_times() {
  CoreTimes times;
  const std::vector<int> allowed = affinity_cores();  // empty: unknown, every core counts
  std::ifstream stat("/proc/stat");
  std::string line;
  while (std::getline(stat, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    if (name.rfind("cpu", 0) != 0 || !all_digits(name.substr(3))) continue;
    const int core = std::atoi(name.c_str() + 3);
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), core) == allowed.end())
      continue;
    int64_t value = 0;
    for (size_t column = 0; column < kStatColumns && fields >> value; ++column) {
      times.total_ticks += value;
      if (column != kIdle && column != kIowait) times.busy_ticks += value;
    }
    times.cores.push_back(core);
  }
  const std::optional<int64_t> own = own_cpu_ticks();
  if (times.cores.empty() || !own) return std::nullopt;
  times.own_ticks = *own;
  return times;
}

std::optional<CoreTimes> core_times_between(const std::optional<CoreTimes>& before,
                                            const std::optional<CoreTimes>& after) {
  if (!before || !after || before->cores != after->cores) return std::nullopt;
  CoreTimes passed;
  passed.cores = after->cores;
  passed.total_ticks = after->total_ticks - before->total_ticks;
  passed.busy_ticks = after->busy_ticks - before->busy_ticks;
  passed.own_ticks = after->own_ticks - before->own_ticks;
  return passed;
}

ThermalState read_thermal_state() {
  ThermalState state;
  const std::string thermal = "/sys/class/thermal/";
  for (const auto& entry : sorted_entries(thermal)) {
    if (entry.rfind("thermal_zone", 0) != 0) continue;
    std::string milli, kind;
    if (!read_line(thermal + entry + "/temp", milli) || !read_line(thermal + entry + "/type", kind))
      continue;
    try {
      state.temperatures_c[entry + ":" + kind] = std::stoll(milli) / 1000.0;
    } catch (const std::exception&) {
    }
  }
  const std::string cpus = "/sys/devices/system/cpu/";
  for (const auto& entry : sorted_entries(cpus)) {
    if (entry.rfind("cpu", 0) != 0 || !all_digits(entry.substr(3))) continue;
    std::string khz;
    if (!read_line(cpus + entry + "/cpufreq/scaling_cur_freq", khz)) continue;
    try {
      state.core_khz[entry] = std::stoll(khz);
    } catch (const std::exception&) {
    }
  }
  state.time = std::chrono::duration<double>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
  return state;
}

int64_t peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kilobytes = -1;
      fields >> kilobytes;
      return kilobytes < 0 ? -1 : kilobytes * 1024;
    }
  }
  return -1;
}

std::string runtime_description() {
#if defined(__clang__)
  std::string compiler = "Clang " __clang_version__;
#elif defined(__GNUC__)
  std::string compiler = "GCC " __VERSION__;
#else
  std::string compiler = "unknown compiler";
#endif
#if defined(__ANDROID__)
  compiler += ", Android API " + std::to_string(__ANDROID_API__);
#endif
  return "C++17 native runner, " + compiler;
}

}  // namespace aiot
