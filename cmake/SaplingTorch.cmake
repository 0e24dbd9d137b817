# Finds LibTorch: PyPI's torch wheel in the project's virtual environment (the primary build), or a LibTorch that
# find_package(Torch) finds as it is (Debian's 1.13 CPU build, or one named by CMAKE_PREFIX_PATH).
#
# Sets TORCH_LIBRARIES, TORCH_CXX_FLAGS, TORCH_VERSION_STRING, SAPLING_WITH_CUDA (ON when the CUDA parts of
# LibTorch are linked and the CUDA code paths compiled), SAPLING_TORCH_SITE (the wheel's site-packages, or empty),
# SAPLING_TORCH_CPU_ONLY and SAPLING_TORCH_CPU_INCLUDE_DIRS (a CUDA wheel used for a CPU build).
#
#   SAPLING_LIBTORCH = pypi    torch from ${SAPLING_PYTHON} (default: .venv/bin/python, scripts/install-deps.sh)
#                      system  find_package(Torch) as found
#   SAPLING_CUDA     = auto    CUDA when LibTorch has it and a CUDA toolkit (nvcc) is found; else a CPU build, said in
#                              one line
#                      on      CUDA or a configure error;  off  a CPU build even against a CUDA LibTorch
set(SAPLING_LIBTORCH "pypi" CACHE STRING "Which LibTorch: pypi (the torch wheel in SAPLING_PYTHON's environment) or system")
set_property(CACHE SAPLING_LIBTORCH PROPERTY STRINGS pypi system)
set(SAPLING_CUDA "auto" CACHE STRING "Build the CUDA code paths: auto, on or off")
set_property(CACHE SAPLING_CUDA PROPERTY STRINGS auto on off)
set(SAPLING_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH "Python whose torch wheel provides LibTorch")

set(SAPLING_WITH_CUDA OFF)
set(SAPLING_TORCH_SITE "")
set(SAPLING_TORCH_CPU_ONLY OFF)  # ON: the CPU libraries of a CUDA wheel, without LibTorch's CMake package
set(SAPLING_TORCH_CPU_INCLUDE_DIRS "")

# The CUDA toolkit: nvcc on PATH, under CUDA_HOME / CUDA_PATH, or at /usr/local/cuda.
function(sapling_find_nvcc out)
  find_program(_nvcc nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH /usr/local/cuda PATH_SUFFIXES bin)
  set(${out} "${_nvcc}" PARENT_SCOPE)
endfunction()

# TorchConfig finds libtorch.so, libc10.so and libc10_cuda.so with find_library(... PATHS <its prefix>/lib), which
# looks in the system folders first: where Debian's libtorch-dev is installed (the sanitizer job installs it), that
# is 1.13's libtorch.so and libc10.so, linked beside the wheel's libtorch_cpu.so, and every program corrupted its
# heap at exit (CI run of stop 32). The cache entries name the wheel's files before TorchConfig runs, and a
# configure that still ends up with another LibTorch's library stops, naming it.
set(SAPLING_TORCH_LIBRARY_VARS TORCH_LIBRARY c10_LIBRARY C10_CUDA_LIBRARY)
set(SAPLING_TORCH_LIBRARY_NAMES torch c10 c10_cuda)
function(sapling_pin_torch_libraries lib_dir)
  foreach(_var _name IN ZIP_LISTS SAPLING_TORCH_LIBRARY_VARS SAPLING_TORCH_LIBRARY_NAMES)
    if(EXISTS "${lib_dir}/lib${_name}.so")
      set(${_var} "${lib_dir}/lib${_name}.so" CACHE FILEPATH "LibTorch's lib${_name}.so" FORCE)
    endif()
  endforeach()
endfunction()
function(sapling_check_torch_libraries lib_dir)
  foreach(_var IN LISTS SAPLING_TORCH_LIBRARY_VARS)
    if(${_var})
      string(FIND "${${_var}}" "${lib_dir}/" _at)
      if(NOT _at EQUAL 0)
        message(FATAL_ERROR "${_var} is ${${_var}}, not the wheel's (${lib_dir}): two LibTorch builds would be "
                            "linked into one program; remove the entry from CMakeCache.txt or the build folder")
      endif()
    endif()
  endforeach()
endfunction()

if(SAPLING_LIBTORCH STREQUAL "pypi")
  if(NOT EXISTS "${SAPLING_PYTHON}")
    message(FATAL_ERROR "SAPLING_LIBTORCH=pypi: ${SAPLING_PYTHON} does not exist. Run scripts/install-deps.sh (it "
                        "makes .venv with the pinned torch wheel), or pass -DSAPLING_PYTHON=/path/to/python with torch, "
                        "or -DSAPLING_LIBTORCH=system for Debian's LibTorch")
  endif()
  execute_process(
    COMMAND "${SAPLING_PYTHON}" -c
      "import os, torch, torch.utils; print(torch.utils.cmake_prefix_path); print(torch.__version__); print(torch.version.cuda or ''); print(os.path.dirname(os.path.dirname(torch.__file__)))"
    OUTPUT_VARIABLE _torch_info RESULT_VARIABLE _torch_rc ERROR_VARIABLE _torch_err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "${SAPLING_PYTHON} cannot import torch (run scripts/install-deps.sh): ${_torch_err}")
  endif()
  string(REPLACE "\n" ";" _torch_info "${_torch_info}")
  list(GET _torch_info 0 _torch_prefix)
  list(GET _torch_info 1 _torch_wheel_version)
  list(GET _torch_info 2 _torch_wheel_cuda)
  list(GET _torch_info 3 SAPLING_TORCH_SITE)
  set(_torch_root "${SAPLING_TORCH_SITE}/torch")
  set(_use_cuda OFF)
  if(_torch_wheel_cuda AND NOT SAPLING_CUDA STREQUAL "off")
    sapling_find_nvcc(_nvcc)
    if(_nvcc)
      set(_use_cuda ON)
    elseif(SAPLING_CUDA STREQUAL "on")
      message(FATAL_ERROR "SAPLING_CUDA=on: torch ${_torch_wheel_version} has CUDA ${_torch_wheel_cuda}, but no nvcc "
                          "was found (PATH, CUDA_HOME, /usr/local/cuda)")
    endif()
  endif()
  if(_use_cuda)
    get_filename_component(_cuda_root "${_nvcc}" DIRECTORY)
    get_filename_component(_cuda_root "${_cuda_root}" DIRECTORY)
    set(CUDA_TOOLKIT_ROOT_DIR "${_cuda_root}" CACHE PATH "CUDA toolkit for LibTorch's CUDA targets")
    set(CMAKE_CUDA_COMPILER "${_nvcc}" CACHE FILEPATH "nvcc")
    # sapling compiles no CUDA kernels (no .cu files): the architecture list only quiets LibTorch's probe.
    if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
      set(TORCH_CUDA_ARCH_LIST "9.0")
    endif()
    list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
    sapling_pin_torch_libraries("${_torch_root}/lib")
    find_package(Torch REQUIRED)
    sapling_check_torch_libraries("${_torch_root}/lib")
    set(SAPLING_WITH_CUDA ON)
    message(STATUS "sapling: LibTorch ${_torch_wheel_version} (PyPI wheel, CUDA ${_torch_wheel_cuda}, toolkit ${_cuda_root})")
  else()
    # The CPU part of the wheel's LibTorch, without its CMake package (which insists on a CUDA toolkit for a CUDA
    # wheel): torch_cpu and c10 carry every CPU kernel and the C++ API.
    if(_torch_wheel_cuda)
      message(STATUS "sapling: no CUDA toolkit (nvcc) found, or SAPLING_CUDA=off: CPU build against torch "
                     "${_torch_wheel_version}'s CPU libraries; the CUDA code paths are not compiled")
    endif()
    find_package(Threads REQUIRED)
    set(SAPLING_TORCH_CPU_ONLY ON)
    set(SAPLING_TORCH_CPU_INCLUDE_DIRS "${_torch_root}/include" "${_torch_root}/include/torch/csrc/api/include")
    set(TORCH_LIBRARIES "${_torch_root}/lib/libtorch_cpu.so" "${_torch_root}/lib/libc10.so" Threads::Threads)
    set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
    set(TORCH_INCLUDE_DIRS "${_torch_root}/include")
  endif()
  set(TORCH_VERSION_STRING "${_torch_wheel_version}")
  # The wheel's libtorch.so exports its own static copy of std::filesystem (64 symbols, built against another
  # libstdc++), and a program that lists libtorch.so before libstdc++.so.6 binds fs::remove_all and friends to that
  # copy, which jumps to a null pointer (the SIGSEGV of docs/gpu/segfault_esm2_save_libtorch2.11.txt). Naming
  # libstdc++ first in every link puts the system's definitions ahead of the wheel's in the global lookup scope.
  add_link_options("LINKER:--no-as-needed" -lstdc++)
  # Executables and plugins find the wheel's libraries (and they their CUDA libraries) without LD_LIBRARY_PATH; the
  # installed ones through cmake/SaplingInstall.cmake.
  list(APPEND CMAKE_BUILD_RPATH "${_torch_root}/lib")
else()
  find_package(Torch REQUIRED)
  set(TORCH_VERSION_STRING "${Torch_VERSION}")
  if(TARGET torch_cuda OR TARGET c10_cuda)
    if(SAPLING_CUDA STREQUAL "off")
      message(STATUS "sapling: SAPLING_CUDA=off: the CUDA code paths are not compiled")
    else()
      set(SAPLING_WITH_CUDA ON)
    endif()
  elseif(SAPLING_CUDA STREQUAL "on")
    message(FATAL_ERROR "SAPLING_CUDA=on, but the LibTorch found (${TORCH_VERSION_STRING}) has no CUDA")
  endif()
  message(STATUS "sapling: LibTorch ${TORCH_VERSION_STRING} (find_package(Torch)), CUDA paths ${SAPLING_WITH_CUDA}")
endif()
separate_arguments(TORCH_CXX_FLAGS_LIST UNIX_COMMAND "${TORCH_CXX_FLAGS}")
