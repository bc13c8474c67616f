# libFuzzer targets (tests/fuzz/), included from tests/core/CMakeLists.txt.
#
# They need clang++ with libFuzzer (Debian: clang-14 + libclang-rt-14-dev) while the main build
# uses g++, so tests/fuzz/ is built as a separate clang++ CMake project (ExternalProject) whose
# binaries land in ${CMAKE_BINARY_DIR}/bin. The fuzzers build whenever such a clang++ works;
# TANDEM_FUZZ=ON makes a missing one a configure error instead of a skip. CTest runs each fuzzer
# for a fixed number of inputs from the committed seed corpus (a smoke test, a few seconds).
include(ExternalProject)

# The CUDA configuration is a compile-and-link check of the GPU code; the CPU one runs the fuzzers.
if(TANDEM_HAVE_CUDA AND NOT TANDEM_FUZZ)
  message(STATUS "Tandem: fuzzers skipped in the CUDA configuration (TANDEM_FUZZ=ON builds them)")
  return()
endif()

find_program(TANDEM_FUZZ_CXX NAMES clang++ clang++-16 clang++-15 clang++-14
             DOC "clang++ used to build the libFuzzer targets")
if(TANDEM_FUZZ_CXX AND NOT TANDEM_FUZZ_CXX_CHECKED STREQUAL TANDEM_FUZZ_CXX)
  set(probe_dir ${CMAKE_BINARY_DIR}/CMakeFiles/fuzz_probe)
  file(MAKE_DIRECTORY ${probe_dir})
  file(WRITE ${probe_dir}/probe.cc
       "#include <cstddef>\n#include <cstdint>\n"
       "extern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n")
  execute_process(
    COMMAND ${TANDEM_FUZZ_CXX} -fsanitize=fuzzer,address,undefined ${probe_dir}/probe.cc
            -o ${probe_dir}/probe
    RESULT_VARIABLE probe_result OUTPUT_QUIET ERROR_QUIET)
  if(probe_result EQUAL 0)
    set(TANDEM_FUZZ_CXX_WORKS ON CACHE INTERNAL "")
  else()
    set(TANDEM_FUZZ_CXX_WORKS OFF CACHE INTERNAL "")
  endif()
  set(TANDEM_FUZZ_CXX_CHECKED ${TANDEM_FUZZ_CXX} CACHE INTERNAL "")
endif()

if(NOT TANDEM_FUZZ_CXX OR NOT TANDEM_FUZZ_CXX_WORKS)
  if(TANDEM_FUZZ)
    message(FATAL_ERROR "TANDEM_FUZZ=ON but no clang++ with libFuzzer works "
                        "(install clang and libclang-rt-dev, or set TANDEM_FUZZ_CXX)")
  endif()
  message(STATUS "Tandem: fuzzers skipped: no clang++ with libFuzzer "
                 "(install clang and libclang-rt-dev)")
  return()
endif()
message(STATUS "Tandem: fuzzers built with ${TANDEM_FUZZ_CXX}")

set(fuzz_cmake_args
  -DCMAKE_CXX_COMPILER=${TANDEM_FUZZ_CXX}
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
  -DTANDEM_SOURCE_DIR=${PROJECT_SOURCE_DIR}
  -DCMAKE_RUNTIME_OUTPUT_DIRECTORY=${CMAKE_BINARY_DIR}/bin)
if(CCACHE_PROGRAM)
  list(APPEND fuzz_cmake_args -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE_PROGRAM})
endif()
# BUILD_ALWAYS: the inner build tracks its own sources (a no-op when nothing changed). One inner
# job, since the outer build already keeps the cores busy.
ExternalProject_Add(tandem_fuzzers
  SOURCE_DIR ${PROJECT_SOURCE_DIR}/tests/fuzz
  BINARY_DIR ${CMAKE_BINARY_DIR}/tests/fuzz-build
  CMAKE_ARGS ${fuzz_cmake_args}
  BUILD_COMMAND ${CMAKE_COMMAND} --build <BINARY_DIR> --parallel 1
  INSTALL_COMMAND ""
  BUILD_ALWAYS ON
  BUILD_BYPRODUCTS ${CMAKE_BINARY_DIR}/bin/safetensors_header_fuzzer)

# New inputs go to a scratch corpus (the first directory); the committed seeds stay untouched.
set(fuzz_work ${CMAKE_BINARY_DIR}/tests/fuzz-corpus/safetensors_header)
add_test(NAME safetensors_header_fuzzer_smoke
  COMMAND sh -c "rm -rf \"$0\" && mkdir -p \"$0\" && exec \"$1\" -runs=50000 -max_len=4096 \
-timeout=10 -dict=\"$2\" \"$0\" \"$3\""
          ${fuzz_work} ${CMAKE_BINARY_DIR}/bin/safetensors_header_fuzzer
          ${PROJECT_SOURCE_DIR}/tests/fuzz/safetensors.dict
          ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus)
set_tests_properties(safetensors_header_fuzzer_smoke PROPERTIES TIMEOUT 120 LABELS fuzz)
