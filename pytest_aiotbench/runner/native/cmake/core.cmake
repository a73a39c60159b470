# The measuring core, aiot_core: everything but main.cpp and the backend (the request and
# result, .npy files, the statistics, the system facts, the timing loop), a static library
# that every backend's runner links. Two ways to have it:
#
#   - compiled in this build: the default, all a hand build of one backend needs;
#   - imported from a core built and installed once before (AIOT_CORE_DIR), so that the
#     backends of one target compile it once (aiotbench-build-runner does this):
#
#       cmake -S . -B build-core -DAIOT_BACKEND=core      # + the same toolchain options
#       cmake --build build-core
#       cmake --install build-core --prefix core
#       cmake -S . -B build-tflite -DAIOT_BACKEND=tflite -DAIOT_CORE_DIR=$PWD/core ...
#
# An installed core is lib/libaiot_core.a, include/protocol_fields.hpp (the protocol it was
# compiled against, which the backend then uses too) and aiot_core.cmake, which says what it
# was built with: the compiler, the target system and ABI, the build type and AIOT_TEST_FAULTS.
# A backend build whose own differ stops, naming them: a core is never linked into a runner
# for another target, nor a test build's core (fault switch) into a product runner.
#
# Cache variable:
#   AIOT_CORE_DIR  an installed core (above); empty compiles the core in this build.

set(AIOT_CORE_DIR "" CACHE PATH
    "an installed core (AIOT_BACKEND=core, then cmake --install): link it instead of compiling the core")
set(aiot_core_src "${CMAKE_CURRENT_LIST_DIR}/../src")

# What a core must agree on with the runner that links it.
if(ANDROID_ABI)
  set(aiot_core_abi "Android ${ANDROID_ABI} (API ${ANDROID_PLATFORM_LEVEL}, ${ANDROID_STL})")
else()
  set(aiot_core_abi "${CMAKE_SYSTEM_NAME} ${CMAKE_SYSTEM_PROCESSOR}")
endif()
if(AIOT_TEST_FAULTS)
  set(aiot_core_faults ON)
else()
  set(aiot_core_faults OFF)
endif()
set(aiot_core_facts "compiler ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}, target \
${aiot_core_abi}, build type ${CMAKE_BUILD_TYPE}, AIOT_TEST_FAULTS ${aiot_core_faults}")

if(AIOT_CORE_DIR)
  if(AIOT_BACKEND STREQUAL "core")
    message(FATAL_ERROR "AIOT_BACKEND=core builds a core: leave AIOT_CORE_DIR empty")
  endif()
  if(NOT EXISTS "${AIOT_CORE_DIR}/aiot_core.cmake")
    message(FATAL_ERROR
      "AIOT_CORE_DIR='${AIOT_CORE_DIR}' has no aiot_core.cmake: pass the folder a core was "
      "installed into (cmake -S . -B build-core -DAIOT_BACKEND=core; cmake --build build-core; "
      "cmake --install build-core --prefix FOLDER), or leave it empty to compile the core here")
  endif()
  # Sets AIOT_CORE_LIBRARY and AIOT_CORE_FACTS.
  include("${AIOT_CORE_DIR}/aiot_core.cmake")
  if(NOT AIOT_CORE_FACTS STREQUAL aiot_core_facts)
    message(FATAL_ERROR
      "the core in ${AIOT_CORE_DIR} was built with ${AIOT_CORE_FACTS}; this build is "
      "${aiot_core_facts}. Build a core with this build's toolchain and options, or leave "
      "AIOT_CORE_DIR empty to compile the core here.")
  endif()
  if(NOT EXISTS "${AIOT_CORE_LIBRARY}")
    message(FATAL_ERROR "the core in ${AIOT_CORE_DIR} lacks its library ${AIOT_CORE_LIBRARY}")
  endif()
  add_library(aiot_core STATIC IMPORTED)
  set_target_properties(aiot_core PROPERTIES
    IMPORTED_LOCATION "${AIOT_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${aiot_core_src};${AIOT_CORE_DIR}/include")
  if(AIOT_TEST_FAULTS)
    set_property(TARGET aiot_core PROPERTY INTERFACE_COMPILE_DEFINITIONS AIOT_TEST_FAULTS=1)
  endif()
  return()
endif()

# protocol_fields.hpp from ../protocol_schema.json; the JSON library.
include(${CMAKE_CURRENT_LIST_DIR}/protocol.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/nlohmann_json.cmake)

add_library(aiot_core STATIC
  ${aiot_core_src}/protocol_io.cpp
  ${aiot_core_src}/npy.cpp
  ${aiot_core_src}/stats.cpp
  ${aiot_core_src}/system.cpp
  ${aiot_core_src}/measure.cpp)
target_include_directories(aiot_core PUBLIC "${aiot_core_src}" "${AIOT_PROTOCOL_INCLUDE_DIR}")
# PRIVATE: only protocol_io.cpp includes nlohmann/json.hpp.
target_link_libraries(aiot_core PRIVATE aiot_nlohmann_json)
if(AIOT_TEST_FAULTS)
  target_sources(aiot_core PRIVATE ${aiot_core_src}/test_faults.cpp)
  target_compile_definitions(aiot_core PUBLIC AIOT_TEST_FAULTS=1)
endif()
if(NOT MSVC)
  target_compile_options(aiot_core PRIVATE -Wall -Wextra)
endif()

if(AIOT_BACKEND STREQUAL "core")
  # cmake --install: what AIOT_CORE_DIR imports.
  set(aiot_core_library_name
      "${CMAKE_STATIC_LIBRARY_PREFIX}aiot_core${CMAKE_STATIC_LIBRARY_SUFFIX}")
  file(CONFIGURE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/aiot_core.cmake" CONTENT
"# The native runner's core, installed by its core build (AIOT_BACKEND=core): do not edit.
set(AIOT_CORE_LIBRARY \"\${CMAKE_CURRENT_LIST_DIR}/lib/@aiot_core_library_name@\")
set(AIOT_CORE_FACTS \"@aiot_core_facts@\")
" @ONLY)
  install(TARGETS aiot_core ARCHIVE DESTINATION lib)
  install(FILES "${AIOT_PROTOCOL_INCLUDE_DIR}/protocol_fields.hpp" DESTINATION include)
  install(FILES "${CMAKE_CURRENT_BINARY_DIR}/aiot_core.cmake" DESTINATION .)
endif()
