# Warnings, sanitizers and the small helpers every CMakeLists.txt below uses.
set(UZRAM_WARNINGS -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND UZRAM_WARNINGS -Wthread-safety)
endif()
if(UZRAM_WERROR)
  list(APPEND UZRAM_WARNINGS -Werror)
endif()

if(UZRAM_SANITIZE)
  add_compile_options(-fsanitize=${UZRAM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${UZRAM_SANITIZE})
endif()

# uzram_layer(NAME SRCS... DEPS ...): one layer as an OBJECT library. Sources see src/ and
# include/; a layer links only the layers below it.
function(uzram_layer name)
  cmake_parse_arguments(L "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} OBJECT ${L_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(${name} PRIVATE ${UZRAM_WARNINGS})
  target_compile_definitions(${name} PUBLIC UZRAM_DEBUG_LEVEL=${UZRAM_DEBUG_LEVEL})
  target_link_libraries(${name} PUBLIC ${L_DEPS} Threads::Threads)
endfunction()

# uzram_test(NAME SRCS... [LABELS ...]): one GoogleTest binary, registered with ctest.
function(uzram_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SRCS;LABELS;LIBS" ${ARGN})
  add_executable(${name} ${T_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(${name} PRIVATE ${UZRAM_WARNINGS})
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # Tests misuse locks on purpose (death tests); the analysis is for the library.
    target_compile_options(${name} PRIVATE -Wno-thread-safety-analysis)
  endif()
  target_link_libraries(${name} PRIVATE uzram GTest::gtest GTest::gtest_main ${T_LIBS})
  if(UZRAM_TEST_PCH)  # about half the tests' compile time (gtest.h and the STL parsed once)
    target_precompile_headers(${name} PRIVATE <gtest/gtest.h> <algorithm> <atomic> <chrono>
      <cstdint> <cstring> <functional> <memory> <string> <thread> <vector>)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()
