# bnserve_add_test(NAME name SOURCES a.cc b.cc DEPS lib1 lib2 [LABELS l])
# Declares one GoogleTest executable and registers every TEST in it with ctest.
function(bnserve_add_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_compile_options(${ARG_NAME} PRIVATE ${BNSERVE_WARNINGS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} bnserve_testing GTest::gmock GTest::gtest_main)
  set(_props "")
  if(ARG_LABELS)
    set(_props PROPERTIES LABELS "${ARG_LABELS}")
  endif()
  # make test-asan builds the core and server tests (the sanitized suite),
  # listed by label (targets bnserve_sanitized_core_tests and _server_tests).
  if(ARG_LABELS MATCHES "^(core|server)$")
    set_property(GLOBAL APPEND PROPERTY BNSERVE_SANITIZED_${ARG_LABELS}_TESTS ${ARG_NAME})
  endif()
  gtest_discover_tests(${ARG_NAME}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
    DISCOVERY_TIMEOUT 60
    ${_props})
endfunction()
