# ExecuTorch backend (framework "executorch"): runs a .pte program lowered to XNNPACK.
#
# Cache variables:
#   AIOT_EXECUTORCH_DIR          Optional. An ExecuTorch package root holding include/executorch/
#                                and lib/libexecutorch*.so: for the host, the `executorch` folder
#                                of the pip wheel (site-packages/executorch). It only pre-fills
#                                the three variables below; set those directly otherwise.
#   AIOT_EXECUTORCH_INCLUDE_DIR  Folder holding executorch/runtime/executor/program.h (the
#                                wheel's executorch/include; for Android, the headers of the
#                                same ExecuTorch release as the AAR, which ships none).
#   AIOT_EXECUTORCH_LIBRARIES    ;-separated shared libraries to link. From the wheel's lib/:
#                                libexecutorch.so (runtime, data loaders), libexecutorch_threadpool.so,
#                                libexecutorch_kernels_optimized.so (kernels for operators left
#                                outside the delegate), libexecutorch_backend_xnnpack.so and, when
#                                present, libexecutorch_kernels_quantized.so. For Android, the
#                                AAR's jni/<abi>/ libraries (libexecutorch.so and what it needs).
#   AIOT_EXECUTORCH_VERSION      The release these belong to, reported as the framework version
#                                (the runtime has no version call). Read from the wheel's
#                                share/cmake/executorch-config-version.cmake when
#                                AIOT_EXECUTORCH_DIR is set.
#   AIOT_EXECUTORCH_COMPILE_DEFINITIONS  What the headers must be compiled with; the defaults
#                                are the wheel's (its executorch-config.cmake lists them).
#
# Why not find_package(executorch): the wheel's imported targets (CMake >= 3.28 only) carry
# -rpath link options ($ORIGIN, $ORIGIN/../lib and the wheel's absolute lib folder) that
# CMAKE_SKIP_RPATH does not remove, which would break the rule that the runner finds its
# libraries through LD_LIBRARY_PATH only; and an Android AAR ships no CMake package at all.

set(AIOT_EXECUTORCH_DIR "" CACHE PATH
    "ExecuTorch package root (the executorch wheel's folder) pre-filling the paths below")
set(AIOT_EXECUTORCH_INCLUDE_DIR "" CACHE PATH
    "folder holding executorch/runtime/executor/program.h")
set(AIOT_EXECUTORCH_LIBRARIES "" CACHE STRING
    "ExecuTorch shared libraries to link (runtime, threadpool, kernels, XNNPACK delegate)")
set(AIOT_EXECUTORCH_VERSION "" CACHE STRING "ExecuTorch release of those libraries")
set(AIOT_EXECUTORCH_COMPILE_DEFINITIONS
    "C10_USING_CUSTOM_GENERATED_MACROS;ET_EVENT_TRACER_ENABLED" CACHE STRING
    "compile definitions the ExecuTorch headers need")

if(AIOT_EXECUTORCH_DIR)
  if(NOT EXISTS "${AIOT_EXECUTORCH_DIR}/include/executorch"
     OR NOT EXISTS "${AIOT_EXECUTORCH_DIR}/lib")
    message(FATAL_ERROR
      "AIOT_EXECUTORCH_DIR='${AIOT_EXECUTORCH_DIR}' has no include/executorch and lib/: expected "
      "the folder of the executorch pip wheel, e.g. "
      "python -c \"import importlib.util as u; print(u.find_spec('executorch').submodule_search_locations[0])\"")
  endif()
  if(NOT AIOT_EXECUTORCH_INCLUDE_DIR)
    set(AIOT_EXECUTORCH_INCLUDE_DIR "${AIOT_EXECUTORCH_DIR}/include" CACHE PATH
        "folder holding executorch/runtime/executor/program.h" FORCE)
  endif()
  if(NOT AIOT_EXECUTORCH_LIBRARIES)
    set(_aiot_et_libraries)
    foreach(_aiot_et_name executorch executorch_threadpool executorch_kernels_optimized
                          executorch_backend_xnnpack)
      list(APPEND _aiot_et_libraries
           "${AIOT_EXECUTORCH_DIR}/lib/${CMAKE_SHARED_LIBRARY_PREFIX}${_aiot_et_name}${CMAKE_SHARED_LIBRARY_SUFFIX}")
    endforeach()
    # Optional in the wheel; lets a quantized program whose quantize/dequantize ops stay
    # outside the delegate load as well.
    set(_aiot_et_quantized
        "${AIOT_EXECUTORCH_DIR}/lib/${CMAKE_SHARED_LIBRARY_PREFIX}executorch_kernels_quantized${CMAKE_SHARED_LIBRARY_SUFFIX}")
    if(EXISTS "${_aiot_et_quantized}")
      list(APPEND _aiot_et_libraries "${_aiot_et_quantized}")
    endif()
    set(AIOT_EXECUTORCH_LIBRARIES "${_aiot_et_libraries}" CACHE STRING
        "ExecuTorch shared libraries to link (runtime, threadpool, kernels, XNNPACK delegate)" FORCE)
  endif()
  if(NOT AIOT_EXECUTORCH_VERSION)
    set(_aiot_et_version_file "${AIOT_EXECUTORCH_DIR}/share/cmake/executorch-config-version.cmake")
    if(EXISTS "${_aiot_et_version_file}")
      file(STRINGS "${_aiot_et_version_file}" _aiot_et_version_line
           REGEX "^set\\(PACKAGE_VERSION \"[^\"]+\"\\)")
      if(_aiot_et_version_line MATCHES "\"([^\"]+)\"")
        set(AIOT_EXECUTORCH_VERSION "${CMAKE_MATCH_1}" CACHE STRING
            "ExecuTorch release of those libraries" FORCE)
      endif()
    endif()
  endif()
endif()

if(NOT AIOT_EXECUTORCH_INCLUDE_DIR
   OR NOT EXISTS "${AIOT_EXECUTORCH_INCLUDE_DIR}/executorch/runtime/executor/program.h")
  message(FATAL_ERROR
    "AIOT_EXECUTORCH_INCLUDE_DIR='${AIOT_EXECUTORCH_INCLUDE_DIR}' does not hold "
    "executorch/runtime/executor/program.h: pass the include folder of the executorch pip "
    "wheel (site-packages/executorch/include), or set AIOT_EXECUTORCH_DIR to the wheel's folder")
endif()
# The vendored c10 headers that runtime/core includes live below the main include folder.
set(_aiot_et_c10_include "${AIOT_EXECUTORCH_INCLUDE_DIR}/executorch/runtime/core/portable_type/c10")
if(NOT EXISTS "${_aiot_et_c10_include}/c10/macros/Macros.h")
  message(FATAL_ERROR
    "AIOT_EXECUTORCH_INCLUDE_DIR='${AIOT_EXECUTORCH_INCLUDE_DIR}' lacks "
    "executorch/runtime/core/portable_type/c10/c10/macros/Macros.h: an incomplete ExecuTorch "
    "header tree (take the executorch pip wheel's include folder)")
endif()

if(NOT AIOT_EXECUTORCH_LIBRARIES)
  message(FATAL_ERROR
    "AIOT_EXECUTORCH_LIBRARIES is empty: list libexecutorch.so, libexecutorch_threadpool.so, "
    "libexecutorch_kernels_optimized.so and libexecutorch_backend_xnnpack.so from the executorch "
    "pip wheel's lib folder (or the Android AAR's jni/<abi>/ libraries), or set "
    "AIOT_EXECUTORCH_DIR to the wheel's folder")
endif()
foreach(_aiot_et_library IN LISTS AIOT_EXECUTORCH_LIBRARIES)
  if(NOT EXISTS "${_aiot_et_library}")
    message(FATAL_ERROR
      "AIOT_EXECUTORCH_LIBRARIES names '${_aiot_et_library}', which does not exist: expected "
      "shared libraries from the executorch pip wheel's lib folder or the Android AAR's jni/<abi>/")
  endif()
endforeach()

if(NOT AIOT_EXECUTORCH_VERSION)
  message(FATAL_ERROR
    "AIOT_EXECUTORCH_VERSION is empty: pass the ExecuTorch release of those libraries (the "
    "executorch wheel's version, `pip show executorch`, or the AAR's), or set "
    "AIOT_EXECUTORCH_DIR so it is read from share/cmake/executorch-config-version.cmake")
endif()

target_sources(${AIOT_RUNNER_TARGET} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src/backend_executorch.cpp)
# SYSTEM: warnings inside ExecuTorch's headers are not ours to fix.
target_include_directories(${AIOT_RUNNER_TARGET} SYSTEM PRIVATE
  "${AIOT_EXECUTORCH_INCLUDE_DIR}" "${_aiot_et_c10_include}")
target_compile_definitions(${AIOT_RUNNER_TARGET} PRIVATE
  ${AIOT_EXECUTORCH_COMPILE_DEFINITIONS}
  "AIOT_EXECUTORCH_VERSION=\"${AIOT_EXECUTORCH_VERSION}\"")
if(NOT MSVC)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/../src/backend_executorch.cpp
                              PROPERTIES COMPILE_OPTIONS "-Wall;-Wextra")
endif()
# The XNNPACK delegate and the kernel libraries register themselves from static
# initializers and export nothing the runner calls, so an --as-needed link (the default of
# many toolchains) would drop them and programs would then fail to load. Keep every listed
# library as a DT_NEEDED entry; push/pop restores the toolchain's own setting afterwards.
if(APPLE)
  target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE ${AIOT_EXECUTORCH_LIBRARIES})
else()
  target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE
    "-Wl,--push-state,--no-as-needed" ${AIOT_EXECUTORCH_LIBRARIES} "-Wl,--pop-state")
endif()
