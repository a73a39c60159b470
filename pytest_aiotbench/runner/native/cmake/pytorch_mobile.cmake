# PyTorch Mobile (the lite interpreter) for aiot_runner_pytorch_mobile.
#
# Cache variables:
#   AIOT_PYTORCH_MOBILE_INCLUDE_DIR  the folder holding torch/csrc/jit/mobile/import.h, ATen/
#                                    and c10/.  Host: <site-packages>/torch/include of the torch
#                                    wheel.  Android: the headers/ folder of the
#                                    pytorch_android_lite AAR.
#   AIOT_PYTORCH_MOBILE_LIBRARIES    the shared libraries to link, as a ;-list of files.
#                                    Host: <site-packages>/torch/lib/libtorch_cpu.so;
#                                    <site-packages>/torch/lib/libc10.so (libtorch_cpu.so also
#                                    needs libgomp.so.1 from that folder at run time).
#                                    Android: the AAR's jni/<abi>/libpytorch_jni_lite.so and the
#                                    libraries next to it that it needs (libfbjni.so,
#                                    libc++_shared.so).
#   AIOT_PYTORCH_MOBILE_CXX11_ABI    0 or 1 to force _GLIBCXX_USE_CXX11_ABI to the library's
#                                    (torch._C._GLIBCXX_USE_CXX11_ABI); empty keeps the
#                                    compiler's default (1 with g++ >= 5; ignored by libc++).
#
# Plain paths rather than find_package(Torch): the AAR has no CMake package, and the wheel's
# TorchConfig drags in Caffe2's dependency search and flags the runner does not need.

set(AIOT_PYTORCH_MOBILE_INCLUDE_DIR "" CACHE PATH
    "folder with torch/csrc/jit/mobile/import.h: <site-packages>/torch/include (torch wheel) or headers/ (pytorch_android_lite AAR)")
set(AIOT_PYTORCH_MOBILE_LIBRARIES "" CACHE STRING
    ";-list of libraries: <site-packages>/torch/lib/libtorch_cpu.so;libc10.so (torch wheel) or jni/<abi>/libpytorch_jni_lite.so;libfbjni.so (pytorch_android_lite AAR)")
set(AIOT_PYTORCH_MOBILE_CXX11_ABI "" CACHE STRING
    "0 or 1: the library's _GLIBCXX_USE_CXX11_ABI (torch._C._GLIBCXX_USE_CXX11_ABI); empty for the compiler default")

if(NOT EXISTS "${AIOT_PYTORCH_MOBILE_INCLUDE_DIR}/torch/csrc/jit/mobile/import.h")
  message(FATAL_ERROR
    "AIOT_PYTORCH_MOBILE_INCLUDE_DIR='${AIOT_PYTORCH_MOBILE_INCLUDE_DIR}' has no "
    "torch/csrc/jit/mobile/import.h. Pass the torch wheel's include folder "
    "(python -c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'include'))\") "
    "or, for Android, the headers/ folder of the pytorch_android_lite AAR.")
endif()

if(NOT AIOT_PYTORCH_MOBILE_LIBRARIES)
  message(FATAL_ERROR
    "AIOT_PYTORCH_MOBILE_LIBRARIES is empty. Pass the libraries to link as a ;-list: the torch "
    "wheel's torch/lib/libtorch_cpu.so;torch/lib/libc10.so, or for Android the "
    "pytorch_android_lite AAR's jni/<abi>/libpytorch_jni_lite.so;jni/<abi>/libfbjni.so.")
endif()
set(aiot_pytorch_mobile_library_dirs "")
foreach(library IN LISTS AIOT_PYTORCH_MOBILE_LIBRARIES)
  if(NOT EXISTS "${library}" OR IS_DIRECTORY "${library}")
    message(FATAL_ERROR
      "AIOT_PYTORCH_MOBILE_LIBRARIES names '${library}', which is not a file. Expected the "
      "torch wheel's torch/lib/libtorch_cpu.so and libc10.so, or the pytorch_android_lite "
      "AAR's jni/<abi>/*.so.")
  endif()
  get_filename_component(library_dir "${library}" DIRECTORY)
  list(APPEND aiot_pytorch_mobile_library_dirs "${library_dir}")
endforeach()
list(REMOVE_DUPLICATES aiot_pytorch_mobile_library_dirs)

if(NOT AIOT_PYTORCH_MOBILE_CXX11_ABI STREQUAL "" AND
   NOT AIOT_PYTORCH_MOBILE_CXX11_ABI MATCHES "^[01]$")
  message(FATAL_ERROR
    "AIOT_PYTORCH_MOBILE_CXX11_ABI='${AIOT_PYTORCH_MOBILE_CXX11_ABI}': use 0, 1 or leave it "
    "empty (the torch wheel tells it: torch._C._GLIBCXX_USE_CXX11_ABI).")
endif()

target_sources(${AIOT_RUNNER_TARGET} PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/../src/backend_pytorch_mobile.cpp)

# SYSTEM: warnings inside torch's headers are not ours to fix.
target_include_directories(${AIOT_RUNNER_TARGET} SYSTEM PRIVATE
  "${AIOT_PYTORCH_MOBILE_INCLUDE_DIR}")
if(EXISTS "${AIOT_PYTORCH_MOBILE_INCLUDE_DIR}/torch/csrc/api/include")
  # Where the wheel keeps torch/version.h.
  target_include_directories(${AIOT_RUNNER_TARGET} SYSTEM PRIVATE
    "${AIOT_PYTORCH_MOBILE_INCLUDE_DIR}/torch/csrc/api/include")
endif()

if(NOT AIOT_PYTORCH_MOBILE_CXX11_ABI STREQUAL "")
  target_compile_definitions(${AIOT_RUNNER_TARGET} PRIVATE
    _GLIBCXX_USE_CXX11_ABI=${AIOT_PYTORCH_MOBILE_CXX11_ABI})
endif()

target_link_libraries(${AIOT_RUNNER_TARGET} PRIVATE ${AIOT_PYTORCH_MOBILE_LIBRARIES})
if(NOT MSVC AND NOT APPLE)
  # Lets the linker find what these libraries need themselves (libgomp.so.1 next to
  # libtorch_cpu.so, libfbjni.so and libc++_shared.so in the AAR) without relying on their
  # $ORIGIN runpath. Only the link uses it: nothing is recorded in the executable.
  foreach(library_dir IN LISTS aiot_pytorch_mobile_library_dirs)
    target_link_options(${AIOT_RUNNER_TARGET} PRIVATE "LINKER:-rpath-link,${library_dir}")
  endforeach()
endif()
