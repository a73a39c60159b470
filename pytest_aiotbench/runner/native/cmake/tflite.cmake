# TFLite (LiteRT) for aiot_runner_tflite, through LiteRT's C API in libLiteRt.so.
#
# Cache variables:
#   AIOT_TFLITE_LIBRARY  libLiteRt.so (SONAME libLiteRt.so). Host: <site-packages>/
#                        ai_edge_litert/libLiteRt.so of the ai-edge-litert wheel
#                        (python -c "import ai_edge_litert, os;
#                         print(os.path.join(os.path.dirname(ai_edge_litert.__file__), 'libLiteRt.so'))").
#                        Android: jni/<abi>/libLiteRt.so of the com.google.ai.edge.litert:litert
#                        AAR. It needs only the C/C++ system libraries at run time.
#   AIOT_TFLITE_VERSION  the LiteRT version the library is, reported by the runner as
#                        "<version> (declared)" because libLiteRt.so exports no version call.
#                        Host: importlib.metadata.version("ai-edge-litert"); Android: the AAR's
#                        version. Optional; empty reports "unknown".
#
# No include folder: the wheel ships no headers, so backend_tflite.cpp declares the C API calls
# it uses itself (from LiteRT 2.3.0's litert/c/*.h) and only links the library.

set(AIOT_TFLITE_LIBRARY "" CACHE FILEPATH
    "libLiteRt.so: <site-packages>/ai_edge_litert/libLiteRt.so (ai-edge-litert wheel) or jni/<abi>/libLiteRt.so (com.google.ai.edge.litert:litert AAR)")
set(AIOT_TFLITE_VERSION "" CACHE STRING
    "LiteRT version of AIOT_TFLITE_LIBRARY: importlib.metadata.version('ai-edge-litert') or the AAR's version")

if(NOT AIOT_TFLITE_LIBRARY)
  message(FATAL_ERROR
    "AIOT_TFLITE_LIBRARY is empty. Pass LiteRT's libLiteRt.so: the ai-edge-litert wheel's "
    "ai_edge_litert/libLiteRt.so (python -c \"import ai_edge_litert, os; "
    "print(os.path.join(os.path.dirname(ai_edge_litert.__file__), 'libLiteRt.so'))\") or, for "
    "Android, jni/<abi>/libLiteRt.so from the com.google.ai.edge.litert:litert AAR.")
endif()
if(NOT EXISTS "${AIOT_TFLITE_LIBRARY}" OR IS_DIRECTORY "${AIOT_TFLITE_LIBRARY}")
  message(FATAL_ERROR
    "AIOT_TFLITE_LIBRARY='${AIOT_TFLITE_LIBRARY}' is not a file. Expected libLiteRt.so from "
    "the ai-edge-litert wheel (ai_edge_litert/libLiteRt.so) or from the "
    "com.google.ai.edge.litert:litert AAR (jni/<abi>/libLiteRt.so).")
endif()
get_filename_component(aiot_tflite_library_name "${AIOT_TFLITE_LIBRARY}" NAME)
if(NOT aiot_tflite_library_name MATCHES "^libLiteRt\\.so")
  message(FATAL_ERROR
    "AIOT_TFLITE_LIBRARY='${AIOT_TFLITE_LIBRARY}' is not libLiteRt.so. The runner uses LiteRT's "
    "C API, which lives in libLiteRt.so (ai-edge-litert wheel: ai_edge_litert/libLiteRt.so; "
    "com.google.ai.edge.litert:litert AAR: jni/<abi>/libLiteRt.so), not in the classic "
    "libtensorflowlite*.so.")
endif()

target_sources(${AIOT_RUNNER_TARGET} PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../src/backend_tflite.cpp)
if(AIOT_TFLITE_VERSION)
  target_compile_definitions(${AIOT_RUNNER_TARGET} PRIVATE
    AIOT_TFLITE_DECLARED_VERSION="${AIOT_TFLITE_VERSION}")
else()
  message(STATUS "AIOT_TFLITE_VERSION not set: aiot_runner_tflite will report version 'unknown'")
endif()
# By path: the library's SONAME (libLiteRt.so) is what the executable records, and it is
# found through LD_LIBRARY_PATH at run time.
target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE "${AIOT_TFLITE_LIBRARY}")
# dlsym: the profiler calls are looked up at run time (libdl before glibc 2.34, Android).
target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE ${CMAKE_DL_LIBS})
