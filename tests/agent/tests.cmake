# The agent's tests: a real Beast WebSocket client against the in-process agent on loopback, over
# the fixture's SoftHSM token through the fault module, with a scripted pinentry as the user.
find_package(SQLite3 REQUIRED)
kyso_add_tests(agent_ws TOKEN
  SOURCES agent/harness.cpp agent/test_security.cpp agent/test_signing.cpp agent/test_units.cpp
    agent/test_limits.cpp
  DEPS kyso::agent OpenSSL::SSL)
target_compile_definitions(agent_ws PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh"
  KYSO_AGENT_BIN="$<TARGET_FILE:kyso-agent>"
  KYSO_FORMATS_MODULE_PATH="$<TARGET_FILE:kyso_formats_module>")
add_dependencies(agent_ws kyso-agent kyso_formats_module)
# spdlog::spdlog: the test captures the agent's log through the library's one registry.
target_link_libraries(agent_ws PRIVATE SQLite::SQLite3 spdlog::spdlog)
target_include_directories(agent_ws PRIVATE ${PROJECT_SOURCE_DIR}/agent/src)  # ordered.hpp
# The audit log's journal anchor against a real journald of the test's own (a private mount
# namespace; skipped where none can be had). Its test case is hidden ([.journal]) from the rest.
add_test(NAME agent_ws:audit_journalAnchor
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/support/with-journald.sh $<TARGET_FILE:agent_ws> "[journal]")
set_tests_properties(agent_ws:audit_journalAnchor PROPERTIES
  FIXTURES_REQUIRED pki ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}" TIMEOUT 60
  SKIP_RETURN_CODE 77)

# Document items (xml, pdf, cms) and transfers through the agent, verified by xmlsec1, pdfsig,
# qpdf and openssl; uses the formats tests' sample class, PDF writer and loopback TSA.
set(_fmt ${CMAKE_CURRENT_SOURCE_DIR}/formats)
kyso_add_tests(agent_items TOKEN
  SOURCES agent/harness.cpp agent/test_items.cpp
          ${_fmt}/format_support.cpp ${_fmt}/pdf_writer.cpp ${_fmt}/tsa_server.cpp
  DEPS kyso::agent kyso::formats OpenSSL::SSL)
target_include_directories(agent_items PRIVATE ${_fmt})
target_compile_definitions(agent_items PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh"
  KYSO_FORMATS_TEST_SRC="${_fmt}"
  KYSO_FORMATS_MODULE_PATH="$<TARGET_FILE:kyso_formats_module>")
# The agent signs xml and pdf items through the module (its own copy of kyso::formats'
# document code), while this test links kyso::formats statically for its checks.
add_dependencies(agent_items kyso_formats_module)

# kyso-agent itself does not link libxml2, qpdf or HarfBuzz (nor GnuTLS, GLib, ICU through
# them), and the module exports its entry point only.
add_test(NAME agent.lazy_formats
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/agent/check-lazy-formats.sh
          $<TARGET_FILE:kyso-agent> $<TARGET_FILE:kyso_formats_module>)
set_tests_properties(agent.lazy_formats PROPERTIES TIMEOUT 30)

# Protocol v1 in-process (tests/agent/protocol): the dispatcher, its parsers and answers with no
# socket and no token.
kyso_add_tests(agent_protocol SOURCES agent/protocol/test_protocol.cpp DEPS kyso::agent)
target_include_directories(agent_protocol PRIVATE ${PROJECT_SOURCE_DIR}/agent/src)

# Crash consistency (issue 17): kyso-agent killed with SIGKILL at random points of a batch and
# restarted, KYSO_CRASH_REPEATS times (3 here; tests/agent/crash-loop.sh runs 50 in a row).
kyso_add_tests(agent_crash TOKEN SOURCES agent/harness.cpp agent/test_crash.cpp
  DEPS kyso::agent OpenSSL::SSL)
target_compile_definitions(agent_crash PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh"
  KYSO_AGENT_BIN="$<TARGET_FILE:kyso-agent>")
add_dependencies(agent_crash kyso-agent kyso)
target_link_libraries(agent_crash PRIVATE SQLite::SQLite3)

# The transport's write-gathering layer (tests/agent/transport) under a real Beast WebSocket on
# loopback: no agent, no token.
kyso_add_tests(agent_transport SOURCES agent/transport/test_gather_stream.cpp DEPS kyso::agent)
target_include_directories(agent_transport PRIVATE ${PROJECT_SOURCE_DIR}/agent/src)
