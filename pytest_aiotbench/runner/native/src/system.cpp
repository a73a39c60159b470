#include "system.hpp"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <fstream>
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

}  // namespace

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
