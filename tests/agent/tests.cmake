# The agent's tests: a real Beast WebSocket client against the in-process agent on loopback, over
# the fixture's SoftHSM token through the fault module, with a scripted pinentry as the user.
find_package(SQLite3 REQUIRED)
kyso_add_tests(agent_ws TOKEN
  SOURCES agent/harness.cpp agent/test_security.cpp agent/test_signing.cpp agent/test_units.cpp
    agent/test_limits.cpp
  DEPS kyso::agent OpenSSL::SSL)
target_compile_definitions(agent_ws PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh"
  KYSO_AGENT_BIN="$<TARGET_FILE:kyso-agent>")
add_dependencies(agent_ws kyso-agent)
target_link_libraries(agent_ws PRIVATE SQLite::SQLite3)
target_include_directories(agent_ws PRIVATE ${PROJECT_SOURCE_DIR}/agent/src)  # ordered.hpp

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
  KYSO_FORMATS_TEST_SRC="${_fmt}")
