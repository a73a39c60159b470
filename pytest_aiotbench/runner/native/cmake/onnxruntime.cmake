# ONNX Runtime for aiot_runner_onnxruntime, through ORT's C API (onnxruntime_c_api.h).
#
# Cache variables:
#   AIOT_ONNXRUNTIME_LIBRARY      libonnxruntime.so*. Host: the onnxruntime wheel's
#                                 <site-packages>/onnxruntime/capi/libonnxruntime.so.<version>
#                                 (SONAME libonnxruntime.so.1, which the wheel does not ship as a
#                                 file: LD_LIBRARY_PATH must hold a libonnxruntime.so.1 link or copy).
#                                 Android: jni/<abi>/libonnxruntime.so of the
#                                 com.microsoft.onnxruntime:onnxruntime-android AAR.
#   AIOT_ONNXRUNTIME_INCLUDE_DIR  the folder holding onnxruntime_c_api.h. Host: the wheel has no
#                                 headers; aiotbench-build-runner fetches Debian's libonnxruntime-dev
#                                 with ../fetch_debian_package.sh (the command is in the message
#                                 below) and passes the folder. Android: the AAR's headers/.
#                                 Any header version up to the library's works: the runner asks
#                                 for the header's ORT_API_VERSION.
# At run time the library needs only the C/C++ system libraries; libonnxruntime_providers_shared.so
# is for other execution providers and is not loaded on CPU.

set(AIOT_ONNXRUNTIME_LIBRARY "" CACHE FILEPATH
    "libonnxruntime.so*: <site-packages>/onnxruntime/capi/libonnxruntime.so.<version> (onnxruntime wheel) or jni/<abi>/libonnxruntime.so (com.microsoft.onnxruntime:onnxruntime-android AAR)")
set(AIOT_ONNXRUNTIME_INCLUDE_DIR "" CACHE PATH
    "folder with onnxruntime_c_api.h: from Debian's libonnxruntime-dev (fetch_debian_package.sh) or the AAR's headers/")

if(NOT EXISTS "${AIOT_ONNXRUNTIME_LIBRARY}" OR IS_DIRECTORY "${AIOT_ONNXRUNTIME_LIBRARY}")
  message(FATAL_ERROR
    "AIOT_ONNXRUNTIME_LIBRARY='${AIOT_ONNXRUNTIME_LIBRARY}' is not a file. Pass ONNX Runtime's "
    "shared library: the onnxruntime wheel's onnxruntime/capi/libonnxruntime.so.<version> "
    "(python -c \"import onnxruntime, glob, os; print(glob.glob(os.path.join("
    "os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so.*'))[0])\") or, for "
    "Android, jni/<abi>/libonnxruntime.so from the com.microsoft.onnxruntime:onnxruntime-android AAR.")
endif()
get_filename_component(aiot_onnxruntime_library_name "${AIOT_ONNXRUNTIME_LIBRARY}" NAME)
if(NOT aiot_onnxruntime_library_name MATCHES "^libonnxruntime\\.so")
  message(FATAL_ERROR
    "AIOT_ONNXRUNTIME_LIBRARY='${AIOT_ONNXRUNTIME_LIBRARY}' is not libonnxruntime.so*: the C API "
    "lives there (onnxruntime wheel: onnxruntime/capi/libonnxruntime.so.<version>; AAR: "
    "jni/<abi>/libonnxruntime.so), not in the Python module onnxruntime_pybind11_state*.so.")
endif()
if(NOT EXISTS "${AIOT_ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_c_api.h")
  message(FATAL_ERROR
    "AIOT_ONNXRUNTIME_INCLUDE_DIR='${AIOT_ONNXRUNTIME_INCLUDE_DIR}' has no onnxruntime_c_api.h. "
    "The onnxruntime wheel ships no headers: run "
    "bash ${CMAKE_CURRENT_LIST_DIR}/../fetch_debian_package.sh CACHE_DIR onnxruntime-headers "
    "libonnxruntime-dev --suite trixie --suite sid --find onnxruntime_c_api.h, which unpacks "
    "Debian's libonnxruntime-dev and prints the folder, or, for Android, pass the headers/ "
    "folder of the com.microsoft.onnxruntime:onnxruntime-android AAR.")
endif()

target_sources(${AIOT_RUNNER_TARGET} PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../src/backend_onnxruntime.cpp)
# SYSTEM: warnings in ORT's header are not ours to fix.
target_include_directories(${AIOT_RUNNER_TARGET} SYSTEM PRIVATE "${AIOT_ONNXRUNTIME_INCLUDE_DIR}")
# Reads ORT's profiling trace (a JSON file) with the runner's JSON library.
include(${CMAKE_CURRENT_LIST_DIR}/nlohmann_json.cmake)
target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE aiot_nlohmann_json)
# By path: the executable records the library's SONAME, found through LD_LIBRARY_PATH at run time.
target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE "${AIOT_ONNXRUNTIME_LIBRARY}")
