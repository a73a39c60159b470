// aiot_runner_<framework>: the native runner's entry point.
//
//   aiot_runner_onnxruntime < request.json      one measurement, result JSON on stdout
//   aiot_runner_onnxruntime --describe          protocol version and framework, as JSON
//   aiot_runner_onnxruntime --statistics        the stopping rule's statistics (tests)
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "backend.hpp"
#include "measure.hpp"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  auto read_stdin = [] {
    return std::string((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  };
  if (mode == "--statistics") return aiot::describe_statistics(read_stdin(), std::cout);

  // Frameworks print to fd 1 from native code; keep the real stdout for the JSON alone.
  std::fflush(stdout);
  const int result_fd = ::dup(1);
  ::dup2(2, 1);
  std::ostringstream result;
  int code;
  if (mode == "--describe") {
    result << aiot::describe();
    code = 0;
  } else if (!mode.empty()) {
    std::cerr << "unknown option " << mode << "; usage: " << argv[0]
              << " [--describe | --statistics] < request.json\n";
    return 64;
  } else {
    auto backend = aiot::make_backend();
    code = aiot::serve(read_stdin(), *backend, result);
  }
  const std::string text = result.str();
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(result_fd, text.data() + written, text.size() - written);
    if (n <= 0) return 74;
    written += static_cast<size_t>(n);
  }
  return code;
}
