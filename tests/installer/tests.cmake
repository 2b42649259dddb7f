# Installer tests (installer/, docs/installers.md). Shell scripts, each under a minute:
#   installer.tls          kyso-local-tls against temporary NSS databases and anchor dir
#   installer.browser_policy  `kyso browser-policy` write/show/remove into a scratch root
#   installer.cpack        cpack -G DEB from this build tree into a fresh directory (fixture)
#   installer.lintian.<p>  lintian on each package: no errors
#   installer.dpkg_root    dpkg --root install into a scratch root, files/units/configs/TLS,
#                          reinstall, purge, host untouched
# cpack packages the targets already built: ctest runs after the build, so they exist.
set(_kyso_inst_tests "${CMAKE_CURRENT_LIST_DIR}")
set(_kyso_deb_out "${CMAKE_BINARY_DIR}/installer-test/debs")

add_test(NAME installer.tls
  COMMAND "${_kyso_inst_tests}/test-local-tls.sh" "${PROJECT_SOURCE_DIR}/installer/tls/kyso-local-tls")
set_tests_properties(installer.tls PROPERTIES TIMEOUT 60)

if(TARGET kyso)
  add_test(NAME installer.browser_policy
    COMMAND "${_kyso_inst_tests}/test-browser-policy.sh" "$<TARGET_FILE:kyso>")
  set_tests_properties(installer.browser_policy PROPERTIES TIMEOUT 180)
endif()

if(DEFINED CPACK_COMPONENTS_ALL)
  # The packages packaging.cmake made components for (kyso-agent/kyso-appliance only once
  # their targets exist).
  set(_kyso_packages)
  foreach(component ${CPACK_COMPONENTS_ALL})
    list(APPEND _kyso_packages kyso-${component})
  endforeach()

  add_test(NAME installer.cpack
    COMMAND "${_kyso_inst_tests}/build-debs.sh" "${CMAKE_BINARY_DIR}/CPackConfig.cmake"
            "${_kyso_deb_out}" ${_kyso_packages})
  set_tests_properties(installer.cpack PROPERTIES FIXTURES_SETUP kyso_debs TIMEOUT 120
    RESOURCE_LOCK kyso_debs_dir)

  foreach(pkg ${_kyso_packages})
    add_test(NAME installer.lintian.${pkg}
      COMMAND "${_kyso_inst_tests}/lintian-deb.sh" "${_kyso_deb_out}" ${pkg})
    set_tests_properties(installer.lintian.${pkg} PROPERTIES FIXTURES_REQUIRED kyso_debs TIMEOUT 90)
  endforeach()

  add_test(NAME installer.dpkg_root
    COMMAND "${_kyso_inst_tests}/test-dpkg-root.sh" "${_kyso_deb_out}" ${_kyso_packages})
  set_tests_properties(installer.dpkg_root PROPERTIES FIXTURES_REQUIRED kyso_debs TIMEOUT 60)
endif()
