# Remote signing: kyso-appliance (CSC v2 over SoftHSM) and the CSC client. Each test copies the
# fixture's token into a temp dir of its own, so parallel tests never share SoftHSM state.

# An independent client: the whole CSC flow with curl + oathtool + openssl only.
add_test(NAME remote.csc_curl_walk
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/remote/csc_curl_walk.sh $<TARGET_FILE:kyso-appliance>)
set_tests_properties(remote.csc_curl_walk PROPERTIES FIXTURES_REQUIRED pki
  ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}" TIMEOUT 60 LABELS "csc;security")

# A mistake on kyso-appliance's command line: exit 2, named, in Vietnamese and English.
add_test(NAME remote.appliance_command_line
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/support/service-command-line.sh
          $<TARGET_FILE:kyso-appliance>)
set_tests_properties(remote.appliance_command_line PROPERTIES TIMEOUT 30 LABELS "csc")

kyso_add_tests(remote_appliance TOKEN
  SOURCES remote/test_appliance.cpp remote/harness.cpp remote/postgres_cluster.cpp
  DEPS kyso::appliance kyso::remote kyso::pkcs11)
target_include_directories(remote_appliance PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/remote)

# The same suite with the state in PostgreSQL: one process, one throw-away cluster (initdb +
# pg_ctl as an unprivileged account), a fresh database per test case.
add_test(NAME remote.appliance_on_postgresql COMMAND remote_appliance)
set_tests_properties(remote.appliance_on_postgresql PROPERTIES FIXTURES_REQUIRED pki
  ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR};KYSO_TEST_STATE=postgresql" TIMEOUT 600
  LABELS "csc;security;postgresql")

# The agent with a remote credential: the appliance and the agent in this process (the agent
# has no token, so only the appliance touches SoftHSM), a WebSocket client as the page and a
# scripted pinentry typing the password, the PIN and a TOTP from oathtool.
# Documents (the class's PDFs and XMLs) are prepared by the agent, signed at the appliance under
# one OTP and embedded; the formats tests' sample class is the input, xmlsec1, pdfsig, qpdf and
# openssl the verifiers.
kyso_add_tests(remote_agent TOKEN
  SOURCES remote/test_agent_remote.cpp remote/harness.cpp remote/postgres_cluster.cpp
          agent/harness.cpp formats/format_support.cpp formats/pdf_writer.cpp
          formats/tsa_server.cpp
  DEPS kyso::agent kyso::appliance kyso::pkcs11 kyso::formats OpenSSL::SSL)
target_include_directories(remote_agent PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/remote
  ${CMAKE_CURRENT_SOURCE_DIR}/agent ${CMAKE_CURRENT_SOURCE_DIR}/formats)
target_compile_definitions(remote_agent PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh"
  KYSO_FORMATS_MODULE_PATH="$<TARGET_FILE:kyso_formats_module>")
add_dependencies(remote_agent kyso_formats_module)

# Several kyso-appliance processes on one throw-away PostgreSQL cluster behind HAProxy (Debian's
# haproxy on free loopback ports, health check GET /health): a SAD used on another node, one SAD
# raced on two nodes, a node SIGKILLed and PostgreSQL restarted in the middle of a 2,000-hash
# batch. Each case starts its own nodes and cluster; RUN_SERIAL because 3 nodes + PostgreSQL +
# HAProxy are a whole province on 2 cores.
add_executable(remote_nodes remote/test_nodes.cpp remote/harness.cpp remote/postgres_cluster.cpp)
target_link_libraries(remote_nodes PRIVATE kyso_test_support kyso::appliance kyso::remote
  kyso::pkcs11)
target_include_directories(remote_nodes PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/remote)
target_compile_definitions(remote_nodes PRIVATE
  KYSO_APPLIANCE_EXE="$<TARGET_FILE:kyso-appliance>"
  KYSO_PREPARE_APPLIANCE="${CMAKE_CURRENT_SOURCE_DIR}/remote/prepare-appliance.sh")
kyso_set_warnings(remote_nodes)
kyso_enable_sanitizers(remote_nodes)
add_dependencies(remote_nodes kyso-appliance kyso_fault_pkcs11 kyso)
foreach(case sadAuthorizedOnNode1_signsOnNode2 sameSadRacedOnTwoNodes_exactlyOneWins
             node1KilledMidBatch_clientRetriesOnAnotherNodeEveryHashOnce
             postgresRestartedMidBatch_batchResumesEveryHashOnce)
  add_test(NAME remote_nodes:${case} COMMAND remote_nodes "nodes_${case}")
  set_tests_properties(remote_nodes:${case} PROPERTIES FIXTURES_REQUIRED pki
    ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}" TIMEOUT 180 RUN_SERIAL TRUE
    LABELS "csc;postgresql")
endforeach()

# Crash consistency (issue 17, item 4): kyso-appliance on its SQLite state killed with SIGKILL at
# random points of a signHash batch and restarted, KYSO_CRASH_REPEATS times (3 here;
# tests/agent/crash-loop.sh runs 50 in a row).
find_package(SQLite3 REQUIRED)
kyso_add_tests(remote_crash TOKEN SOURCES remote/test_crash.cpp remote/harness.cpp
  remote/postgres_cluster.cpp
  DEPS kyso::appliance kyso::remote kyso::pkcs11 SQLite::SQLite3)
target_include_directories(remote_crash PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/remote)
target_compile_definitions(remote_crash PRIVATE
  KYSO_APPLIANCE_EXE="$<TARGET_FILE:kyso-appliance>"
  KYSO_PREPARE_APPLIANCE="${CMAKE_CURRENT_SOURCE_DIR}/remote/prepare-appliance.sh")
add_dependencies(remote_crash kyso-appliance)
