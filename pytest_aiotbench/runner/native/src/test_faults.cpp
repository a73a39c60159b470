#include "test_faults.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend.hpp"

namespace aiot {

void inject_test_fault(const char* stage) {
  const char* fault = std::getenv("AIOT_RUNNER_FAULT");
  if (fault != nullptr &&
      std::string(fault) == std::string(kFrameworkName) + ":segfault-after-" + stage) {
    std::fprintf(stderr, "aiot_runner: AIOT_RUNNER_FAULT=%s: raising SIGSEGV\n", fault);
    std::fflush(stderr);
    std::raise(SIGSEGV);
  }
}

}  // namespace aiot
