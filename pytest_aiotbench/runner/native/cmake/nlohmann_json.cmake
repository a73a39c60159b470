# nlohmann-json, the runner's JSON library (header-only, so one folder serves every target,
# Android and cross builds included).
#
# Cache variable:
#   AIOT_NLOHMANN_JSON_INCLUDE_DIR  the folder holding nlohmann/json.hpp. aiotbench-build-runner
#                                   passes the one of the nlohmann-json package on PyPI (a
#                                   dependency of this plugin):
#                                   python -c "import nlohmann_json; print(nlohmann_json.get_include())"
#                                   Left empty, a CMake package nlohmann_json (Debian's
#                                   nlohmann-json3-dev) is looked for.
# The core and a backend may both include this file in one project.
include_guard(GLOBAL)

set(AIOT_NLOHMANN_JSON_INCLUDE_DIR "" CACHE PATH
    "folder with nlohmann/json.hpp: the nlohmann-json package's include folder (PyPI)")

add_library(aiot_nlohmann_json INTERFACE)
if(AIOT_NLOHMANN_JSON_INCLUDE_DIR)
  if(NOT EXISTS "${AIOT_NLOHMANN_JSON_INCLUDE_DIR}/nlohmann/json.hpp")
    message(FATAL_ERROR
      "AIOT_NLOHMANN_JSON_INCLUDE_DIR='${AIOT_NLOHMANN_JSON_INCLUDE_DIR}' has no "
      "nlohmann/json.hpp. pip install nlohmann-json and pass the folder that "
      "python -c \"import nlohmann_json; print(nlohmann_json.get_include())\" prints.")
  endif()
  # SYSTEM: warnings in a kept library's header are not ours to fix.
  target_include_directories(aiot_nlohmann_json SYSTEM INTERFACE
                             "${AIOT_NLOHMANN_JSON_INCLUDE_DIR}")
else()
  find_package(nlohmann_json 3.9 CONFIG QUIET)
  if(NOT nlohmann_json_FOUND)
    message(FATAL_ERROR
      "nlohmann-json not found: pip install nlohmann-json and pass "
      "-DAIOT_NLOHMANN_JSON_INCLUDE_DIR=$(python -c \"import nlohmann_json; "
      "print(nlohmann_json.get_include())\") (aiotbench-build-runner does this itself).")
  endif()
  target_link_libraries(aiot_nlohmann_json INTERFACE nlohmann_json::nlohmann_json)
endif()
