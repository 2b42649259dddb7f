# Provisioning and configuration (firmware-config/): config validation is a unit test; the
# provisioning tests make their own SoftHSM2 tokens under a temp SOFTHSM2_CONF per test case,
# so they never touch the fixture's tokens. TOKEN only for the fixture's test PKI (sub CA).
kyso_add_tests(unit_config SOURCES provisioning/test_config.cpp DEPS kyso::firmware_config)
kyso_add_tests(integration_provisioning TOKEN SOURCES provisioning/test_provision.cpp
  provisioning/test_batch.cpp provisioning/test_doctor.cpp provisioning/test_provision_cli.cpp DEPS kyso::firmware_config kyso::pkcs11)
target_compile_definitions(unit_config PRIVATE
  KYSO_EXAMPLES_DIR="${PROJECT_SOURCE_DIR}/firmware-config/examples")
target_compile_definitions(integration_provisioning PRIVATE
  KYSO_LOCAL_TLS_TOOL="${PROJECT_SOURCE_DIR}/installer/tls/kyso-local-tls"
  KYSO_TSA_HTTP="${CMAKE_CURRENT_SOURCE_DIR}/provisioning/tsa_http.py"
  KYSO_APPLIANCE="$<TARGET_FILE:kyso-appliance>"
  KYSO_AGENT="$<TARGET_FILE:kyso-agent>")
add_dependencies(integration_provisioning kyso kyso-appliance kyso-agent)
