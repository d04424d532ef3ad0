# ctest helper (cmake -P): compiles one sm_90a source again with nvcc -cubin and fails when ptxas
# prints a performance note C75xx, such as C7520 ("wgmma.mma_async instructions are serialized ..."):
# the kernel then still computes the right values, so no other test notices that its tensor-core
# products no longer overlap anything (NOTES.md of the CUDA backend, eleventh and twelfth sessions).
# Variables: NVCC, SRC, OUT (the cubin to write), INC_A, INC_B (include directories), FLAGS (the
# object library's nvcc flags, space-separated: native/CMakeLists.txt, ENDLESS_SM90A_FLAGS).
foreach(v NVCC SRC OUT INC_A INC_B FLAGS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_ptxas_notes.cmake: ${v} is not set")
  endif()
endforeach()
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(
  COMMAND "${NVCC}" -std=c++17 -O3 ${flags} "-I${INC_A}" "-I${INC_B}" -cubin -o "${OUT}" "${SRC}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nvcc failed on ${SRC} (${rc}):\n${out}${err}")
endif()
string(REGEX MATCHALL "\\(C75[0-9][0-9]\\)[^\n]*" notes "${out}${err}")
if(notes)
  string(REPLACE ";" "\n" notes "${notes}")
  message(FATAL_ERROR "ptxas performance notes for ${SRC}:\n${notes}")
endif()
message(STATUS "${SRC}: no ptxas C75xx notes")
