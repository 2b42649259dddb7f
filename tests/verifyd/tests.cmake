# kyso-verifyd: the service in this process on a loopback port, the demo PKI's transcripts
# signed on the fixture token, curl as the client, pdfsig for the sealed report, python3's
# jsonschema for the published schema, and headless Debian chromium for the page. Not through
# kyso_add_tests: no fault module is needed, and the page and bad-input cases (1 GB streamed,
# bombs) want a longer timeout on a loaded machine. The doctor case runs the kyso CLI of the
# default build (the fixture names it in KYSO_CLI).
set(_vd ${CMAKE_CURRENT_SOURCE_DIR}/verifyd)
set(_fmt ${CMAKE_CURRENT_SOURCE_DIR}/formats)
add_executable(verifyd_tests
  ${_vd}/test_verifyd.cpp ${_vd}/test_verifyd_limits.cpp ${_vd}/verifyd_support.cpp
  ${_fmt}/format_support.cpp ${_fmt}/pdf_writer.cpp ${_fmt}/tsa_server.cpp)
target_link_libraries(verifyd_tests PRIVATE kyso_test_support kyso::verifyd kyso::firmware_config
  kyso::formats kyso::pkcs11 spdlog::spdlog)
target_include_directories(verifyd_tests PRIVATE ${_vd} ${_fmt})
target_compile_definitions(verifyd_tests PRIVATE KYSO_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(verifyd_tests kyso_fault_pkcs11 kyso)
kyso_set_warnings(verifyd_tests)
kyso_enable_sanitizers(verifyd_tests)
# A mistake on kyso-verifyd's command line: exit 2, named, in Vietnamese and English.
add_test(NAME verifyd.command_line
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/support/service-command-line.sh $<TARGET_FILE:kyso-verifyd>)
set_tests_properties(verifyd.command_line PROPERTIES TIMEOUT 30)
catch_discover_tests(verifyd_tests TEST_PREFIX "verifyd_tests:"
  PROPERTIES FIXTURES_REQUIRED pki ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}" TIMEOUT 600)
