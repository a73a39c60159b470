// What the runner reads of the device around the timing: thermal zones, core frequencies,
// the cores' time and its own, and its own peak resident memory.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace aiot {

struct ThermalState {
  std::map<std::string, double> temperatures_c;  // "thermal_zone0:<type>" -> degrees C
  std::map<std::string, int64_t> core_khz;       // "cpu0" -> current frequency
  double time = 0;                               // seconds since the epoch
};

ThermalState read_thermal_state();

// The cores this process may run on (its affinity mask), their time from /proc/stat in clock
// ticks (busy: user+nice+system+irq+softirq+steal; total: busy+idle+iowait), and this
// process's own CPU time (utime+stime of /proc/self/stat, every thread), in clock ticks.
struct CoreTimes {
  std::vector<int> cores;
  int64_t total_ticks = 0, busy_ticks = 0, own_ticks = 0;
};

// Now; nullopt where /proc cannot be read.
std::optional<CoreTimes> read_core_times();

// What passed from `before` to `after`; nullopt where either is unknown or the cores changed.
std::optional<CoreTimes> core_times_between(const std::optional<CoreTimes>& before,
                                            const std::optional<CoreTimes>& after);

// Peak resident set size so far (VmHWM of /proc/self/status), in bytes; -1 if unknown.
int64_t peak_resident_bytes();

// The compiler this runner was built with, e.g. "C++17, GCC 12.2.0".
std::string runtime_description();

}  // namespace aiot
