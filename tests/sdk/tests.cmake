# The JS SDK (sdk/js), three tests; ./run deps does `npm ci` in sdk/js first:
#  - sdk.unit: the SDK in Node against a scripted fake agent (no browser, no agent);
#  - sdk.demo_page: the demo page in headless Debian chromium against that fake agent holding real
#    keys (statuses, progress, a batch cut short, the page's own signature check);
#  - sdk.browser_e2e: the real kyso-agent on the demo token, the demo page, chromium;
#  - sdk.browser_e2e_remote: the same with the principal's key in kyso-appliance (remote signing);
#  - sdk.example_server_signing: examples/server-signing's server with kyso prepare / embed;
#  - sdk.browser_lna: the demo as a public https site in chromium, Local Network Access without
#    permission, with IT's managed policy (from `kyso browser-policy`), in an iframe with and
#    without allow. It writes /etc/chromium/policies/managed/ (machine-global, root only): the
#    kyso_chromium_policy lock keeps any other user of that directory from running beside it.
# Each rebuilds sdk/js/dist, hence the shared lock.
find_program(KYSO_NPM npm)
if(KYSO_NPM)
  set(KYSO_SDK_JS "${CMAKE_SOURCE_DIR}/sdk/js")
  add_test(NAME sdk.unit COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:unit)
  set_tests_properties(sdk.unit PROPERTIES TIMEOUT 120 RESOURCE_LOCK kyso_sdk_js_dist)
  add_test(NAME sdk.demo_page COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:page)
  set_tests_properties(sdk.demo_page PROPERTIES TIMEOUT 120 RESOURCE_LOCK kyso_sdk_js_dist)

  add_test(NAME sdk.browser_e2e COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:e2e)
  set_tests_properties(sdk.browser_e2e PROPERTIES
    FIXTURES_REQUIRED pki
    ENVIRONMENT "${KYSO_TEST_ENV};KYSO_AGENT_BIN=$<TARGET_FILE:kyso-agent>"
    RESOURCE_LOCK kyso_sdk_js_dist
    TIMEOUT 300)
  add_test(NAME sdk.browser_lna COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:e2e-lna)
  set_tests_properties(sdk.browser_lna PROPERTIES
    FIXTURES_REQUIRED pki
    ENVIRONMENT "${KYSO_TEST_ENV};KYSO_AGENT_BIN=$<TARGET_FILE:kyso-agent>;KYSO_CLI=$<TARGET_FILE:kyso>"
    RESOURCE_LOCK "kyso_sdk_js_dist;kyso_chromium_policy"
    TIMEOUT 300)
  # examples/server-signing (the Node transcript server a web developer copies) with the real
  # kyso prepare / embed on the demo token; the digests signed through kyso sign-hash.
  add_test(NAME sdk.example_server_signing COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:example)
  set_tests_properties(sdk.example_server_signing PROPERTIES
    FIXTURES_REQUIRED pki ENVIRONMENT "${KYSO_TEST_ENV}" TIMEOUT 120)
  # The principal's batch with a remote credential: kyso-appliance as the signing service.
  add_test(NAME sdk.browser_e2e_remote COMMAND ${KYSO_NPM} --prefix ${KYSO_SDK_JS} run test:e2e-remote)
  set_tests_properties(sdk.browser_e2e_remote PROPERTIES
    FIXTURES_REQUIRED pki
    ENVIRONMENT "${KYSO_TEST_ENV};KYSO_AGENT_BIN=$<TARGET_FILE:kyso-agent>;KYSO_APPLIANCE_BIN=$<TARGET_FILE:kyso-appliance>"
    RESOURCE_LOCK kyso_sdk_js_dist
    TIMEOUT 300)
endif()
