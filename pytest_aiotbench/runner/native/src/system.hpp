// What the runner reads of the device around the timing: thermal zones, core frequencies,
// and its own peak resident memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace aiot {

struct ThermalState {
  std::map<std::string, double> temperatures_c;  // "thermal_zone0:<type>" -> degrees C
  std::map<std::string, int64_t> core_khz;       // "cpu0" -> current frequency
  double time = 0;                               // seconds since the epoch
};

ThermalState read_thermal_state();

// Peak resident set size so far (VmHWM of /proc/self/status), in bytes; -1 if unknown.
int64_t peak_resident_bytes();

// The compiler this runner was built with, e.g. "C++17, GCC 12.2.0".
std::string runtime_description();

}  // namespace aiot
