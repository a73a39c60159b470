// Fault injection for the host's crash-handling tests, compiled only into test builds
// (CMake option AIOT_TEST_FAULTS): the product binary has no such switch.
#pragma once

namespace aiot {

#ifdef AIOT_TEST_FAULTS
// AIOT_RUNNER_FAULT=<framework>:segfault-after-<stage>: raise a real SIGSEGV after `stage`.
void inject_test_fault(const char* stage);
#else
inline void inject_test_fault(const char*) {}
#endif

}  // namespace aiot
