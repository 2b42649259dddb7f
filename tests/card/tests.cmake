# The OpenSC path: OpenSC's PKCS#11 module through pcscd and the vsmartcard-vpcd reader to PIV
# cards played by kyso-piv-card.py (tests/card/card-fixture.sh starts pcscd and makes the cards'
# keys and certificates from the test PKI). pcsc-lite has one socket per machine: every test of
# the fixture holds RESOURCE_LOCK pcscd, and the fixture itself a machine-wide lock. A test whose
# machine cannot run pcscd exits 77 and ctest reports it skipped with the fixture's reason.
# The cards' directory sits beside the test PKI's (card.cpp finds it from KYSO_TEST_DIR, as
# catch_discover_tests passes one environment variable only).
set(KYSO_CARD_DIR "${CMAKE_BINARY_DIR}/test-card")
add_test(NAME card.setup COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/card/card-fixture.sh start
  ${KYSO_CARD_DIR} ${KYSO_TEST_DIR})
add_test(NAME card.cleanup COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/card/card-fixture.sh stop
  ${KYSO_CARD_DIR} ${KYSO_TEST_DIR})
set_tests_properties(card.setup PROPERTIES FIXTURES_SETUP card FIXTURES_REQUIRED pki
  RESOURCE_LOCK pcscd TIMEOUT 700)
set_tests_properties(card.cleanup PROPERTIES FIXTURES_CLEANUP card RESOURCE_LOCK pcscd TIMEOUT 30)

add_library(kyso_card_support STATIC card/card.cpp)
target_include_directories(kyso_card_support PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/card)
target_link_libraries(kyso_card_support PUBLIC kyso::pkcs11 nlohmann_json::nlohmann_json)
kyso_set_warnings(kyso_card_support)

function(kyso_add_card_tests exe)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${exe} ${ARG_SOURCES})
  target_link_libraries(${exe} PRIVATE kyso_test_support kyso_card_support ${ARG_DEPS})
  kyso_set_warnings(${exe})
  kyso_enable_sanitizers(${exe})
  add_dependencies(${exe} kyso kyso_fault_pkcs11)
  catch_discover_tests(${exe} TEST_PREFIX "${exe}:"
    PROPERTIES FIXTURES_REQUIRED card RESOURCE_LOCK pcscd SKIP_RETURN_CODE 77 TIMEOUT 180
    ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}")
endfunction()

kyso_add_card_tests(card_token SOURCES card/test_card_token.cpp DEPS kyso::pkcs11)
kyso_add_card_tests(card_agent SOURCES agent/harness.cpp card/test_card_agent.cpp
  DEPS kyso::agent OpenSSL::SSL SQLite::SQLite3)
target_compile_definitions(card_agent PRIVATE
  KYSO_TEST_PINENTRY="${CMAKE_CURRENT_SOURCE_DIR}/agent/scripted-pinentry.sh")
target_include_directories(card_agent PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/agent)

# The card pulled mid-batch (issue 16, item 4), run by its tag under a name of its own. OpenSC
# 0.23 often never returns from the call after the card goes (sc_unlock waits on a mutex);
# the token layer's watchdog gives up on the call (TOKEN_UNRESPONSIVE), leaves that module
# behind and loads a fresh copy of it, which sees the card come back (README, "Tokens").
foreach(t card_token card_agent)
  add_test(NAME ${t}:card-pulled COMMAND ${t} "[card-pulled]")
  set_tests_properties(${t}:card-pulled PROPERTIES FIXTURES_REQUIRED card
    RESOURCE_LOCK pcscd SKIP_RETURN_CODE 77 TIMEOUT 180
    ENVIRONMENT "KYSO_TEST_DIR=${KYSO_TEST_DIR}")
endforeach()
