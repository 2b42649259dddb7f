# Debian packages (cpack -G DEB), one per component:
#   kyso-tools      the `kyso` command for IT staff                          COMPONENT tools
#   kyso-agent      kyso-agent, its systemd user units, /etc/kyso/kyso-agent.toml,
#                   kyso-local-tls (local CA for wss, run by postinst/prerm)  COMPONENT agent
#   kyso-appliance  kyso-appliance as a confined system service, its system
#                   user (postinst), /etc/kyso/kyso-appliance.toml                 COMPONENT appliance
#   kyso-verifyd    kyso-verifyd as a confined, stateless system service, its
#                   system user (postinst), /etc/kyso/kyso-verifyd.toml             COMPONENT verifyd
# A package is made only when its executable target exists, so the build never depends on
# work in progress elsewhere. install() rules outside installer/ that name no COMPONENT land in
# "Unspecified", which no package ships: give them one of the three components above.
# docs/installers.md describes what each package installs.

set(KYSO_DEB_MAINTAINER "Kyso maintainers <packaging@kyso.invalid>" CACHE STRING
  "Maintainer field of the Debian packages (Name <address>)")
set(KYSO_DEB_RELEASE "1" CACHE STRING "Debian revision of the packages")

set(_kyso_inst "${CMAKE_CURRENT_LIST_DIR}")
set(_kyso_gen "${CMAKE_BINARY_DIR}/installer")
file(MAKE_DIRECTORY "${_kyso_gen}")
set(KYSO_DEB_VERSION "${PROJECT_VERSION}-${KYSO_DEB_RELEASE}")
set(KYSO_VERSION "${PROJECT_VERSION}")

# changelog.Debian.gz and man pages, compressed as lintian expects (gzip -9n: no name, no time).
# The date honours SOURCE_DATE_EPOCH for reproducible packages.
string(TIMESTAMP KYSO_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
function(_kyso_gzip_configured src dst)
  configure_file("${src}" "${dst}" @ONLY)
  execute_process(COMMAND gzip -9nf "${dst}" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip ${dst} failed")
  endif()
endfunction()
_kyso_gzip_configured("${_kyso_inst}/debian/changelog.in" "${_kyso_gen}/changelog.Debian")
foreach(page kyso.1 kyso-agent.1 kyso-local-tls.8 kyso-appliance.8 kyso-verifyd.8)
  _kyso_gzip_configured("${_kyso_inst}/man/${page}" "${_kyso_gen}/man/${page}")
endforeach()

# Files every package carries: copyright and changelog under /usr/share/doc/<package>/, and its
# lintian overrides, each with the reason next to it (installer/debian/lintian/).
function(_kyso_deb_docs component package)
  install(FILES "${_kyso_inst}/debian/copyright" "${_kyso_gen}/changelog.Debian.gz"
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
  install(FILES "${_kyso_inst}/debian/lintian/${package}"
    DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides COMPONENT ${component})
endfunction()

# Packaged executables link with full RELRO and immediate binding (Debian's hardening flags).
function(_kyso_harden target)
  target_link_options(${target} PRIVATE LINKER:-z,relro LINKER:-z,now)
endfunction()

set(_kyso_components tools)

# ---- kyso-tools -----------------------------------------------------------------------------
_kyso_harden(kyso)
install(TARGETS kyso RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
install(FILES "${_kyso_gen}/man/kyso.1.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT tools)
# The token table is compiled in; this copy is the reference IT starts a school's own profile
# from (firmware-config installs it without a component).
install(FILES "${PROJECT_SOURCE_DIR}/firmware-config/profiles/tokens.toml"
  DESTINATION ${CMAKE_INSTALL_DATADIR}/kyso/profiles COMPONENT tools)
_kyso_deb_docs(tools kyso-tools)

# ---- kyso-agent -----------------------------------------------------------------------------
list(APPEND _kyso_components agent)
_kyso_harden(kyso-agent)
install(TARGETS kyso-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT agent)
# xml and pdf items: the document formats module the agent dlopens on first use, where it
# looks (libdir/kyso relative to bindir: /usr/lib/kyso/kyso-formats-documents.so).
_kyso_harden(kyso_formats_module)
install(TARGETS kyso_formats_module LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/kyso
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT agent)
install(PROGRAMS "${_kyso_inst}/tls/kyso-local-tls" DESTINATION ${CMAKE_INSTALL_SBINDIR}
  COMPONENT agent)
# User units live in /usr/lib/systemd/user (systemd's user search path on Debian 12).
install(FILES "${_kyso_inst}/systemd/kyso-agent.service" "${_kyso_inst}/systemd/kyso-agent.socket"
  DESTINATION lib/systemd/user COMPONENT agent)
# The browsers' managed policy follows the allow-list (system units: it writes under /etc).
install(FILES "${_kyso_inst}/systemd/kyso-browser-policy.path"
  "${_kyso_inst}/systemd/kyso-browser-policy.service"
  DESTINATION /lib/systemd/system COMPONENT agent)
# A desktop user made after installation gets a wss certificate (kyso-local-tls install).
install(FILES "${_kyso_inst}/systemd/kyso-local-tls.path"
  "${_kyso_inst}/systemd/kyso-local-tls.service"
  DESTINATION /lib/systemd/system COMPONENT agent)
install(FILES "${_kyso_inst}/config/kyso-agent.toml" DESTINATION /etc/kyso COMPONENT agent)
install(FILES "${_kyso_gen}/man/kyso-agent.1.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
  COMPONENT agent)
install(FILES "${_kyso_gen}/man/kyso-local-tls.8.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8
  COMPONENT agent)
install(FILES "${_kyso_inst}/debian/README.Debian.agent" RENAME README.Debian
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-agent COMPONENT agent)
_kyso_deb_docs(agent kyso-agent)

# ---- kyso-appliance -------------------------------------------------------------------------
list(APPEND _kyso_components appliance)
_kyso_harden(kyso-appliance)
install(TARGETS kyso-appliance RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT appliance)
# System units stay in /lib/systemd/system on Debian 12 (lintian: systemd-service-file-outside-lib).
install(FILES "${_kyso_inst}/systemd/kyso-appliance.service" DESTINATION /lib/systemd/system
  COMPONENT appliance)
install(FILES "${_kyso_inst}/config/kyso-appliance.toml" DESTINATION /etc/kyso COMPONENT appliance)
install(FILES "${PROJECT_SOURCE_DIR}/firmware-config/examples/kyso-appliance.toml"
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-appliance/examples COMPONENT appliance)
install(FILES "${_kyso_gen}/man/kyso-appliance.8.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8
  COMPONENT appliance)
install(FILES "${_kyso_inst}/debian/README.Debian.appliance" RENAME README.Debian
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-appliance COMPONENT appliance)
_kyso_deb_docs(appliance kyso-appliance)

# ---- kyso-verifyd ---------------------------------------------------------------------------
list(APPEND _kyso_components verifyd)
_kyso_harden(kyso-verifyd)
install(TARGETS kyso-verifyd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT verifyd)
install(FILES "${_kyso_inst}/systemd/kyso-verifyd.service" DESTINATION /lib/systemd/system
  COMPONENT verifyd)
install(FILES "${_kyso_inst}/config/kyso-verifyd.toml" DESTINATION /etc/kyso COMPONENT verifyd)
install(FILES "${PROJECT_SOURCE_DIR}/formats/verifyd/examples/kyso-verifyd.toml"
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-verifyd/examples COMPONENT verifyd)
install(FILES "${PROJECT_SOURCE_DIR}/docs/schemas/validation-report.json"
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-verifyd COMPONENT verifyd)
install(FILES "${_kyso_gen}/man/kyso-verifyd.8.gz" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8
  COMPONENT verifyd)
install(FILES "${_kyso_inst}/debian/README.Debian.verifyd" RENAME README.Debian
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kyso-verifyd COMPONENT verifyd)
_kyso_deb_docs(verifyd kyso-verifyd)

# ---- CPack ----------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kyso)
set(CPACK_PACKAGE_VENDOR "Kyso")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${KYSO_DEB_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL ${_kyso_components})
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE "${KYSO_DEB_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${KYSO_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SOURCE kyso)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

# Descriptions: ASCII only in control files; the Vietnamese term is given without diacritics.
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME kyso-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
# libsystemd0: `kyso audit verify` reads the journal's audit anchors through a libsystemd it
# loads then (agent/src/journal_systemd.cpp), which dpkg-shlibdeps cannot see.
set(CPACK_DEBIAN_TOOLS_PACKAGE_DEPENDS "libsystemd0")
set(CPACK_DEBIAN_TOOLS_DESCRIPTION
"IT staff command for Kyso transcript signing tokens
Kyso signs Vietnam's digital school transcripts (hoc ba so) with the teachers',
principals' and school seal's USB tokens or with remote signing. The kyso
command lists the USB tokens plugged in and the PKCS#11 module each needs,
provisions tokens (PINs, keys, certificate requests with Vietnamese subjects,
certificates), and checks a teacher's computer.")

set(CPACK_DEBIAN_AGENT_PACKAGE_NAME kyso-agent)
set(CPACK_DEBIAN_AGENT_PACKAGE_SECTION utils)
# fonts-dejavu-core: the visible PDF signature box draws its Vietnamese text in DejaVu Sans.
# kyso-tools: postinst and kyso-browser-policy.service write the browsers' policy with `kyso`.
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS
  "kyso-tools, openssl, libnss3-tools, ca-certificates, fonts-dejavu-core")
set(CPACK_DEBIAN_AGENT_PACKAGE_RECOMMENDS
  "pinentry-gnome3 | pinentry-qt | pinentry-gtk2, opensc-pkcs11, pcscd")
set(CPACK_DEBIAN_AGENT_PACKAGE_CONTROL_EXTRA
  "${_kyso_inst}/debian/agent/postinst;${_kyso_inst}/debian/agent/prerm;${_kyso_inst}/debian/agent/postrm;${_kyso_inst}/debian/agent/conffiles")
set(CPACK_DEBIAN_AGENT_DESCRIPTION
"local signing agent for Vietnamese digital school transcripts
Kyso signs Vietnam's digital school transcripts (hoc ba so). The agent runs as
each teacher's own systemd user service and lets the school's web transcript
system ask for signatures over a WebSocket on 127.0.0.1: the site's origin is
checked or paired, the PIN is typed only in the agent's own dialog, and a
batch of transcripts is approved once.
.
Installing the package makes a certificate authority for this computer only,
issues the agent's wss certificate for localhost from it, destroys the
authority's key, and trusts it in the system store and in every user's
Chrome and Firefox profiles; removing the package takes that trust back.")

set(CPACK_DEBIAN_APPLIANCE_PACKAGE_NAME kyso-appliance)
set(CPACK_DEBIAN_APPLIANCE_PACKAGE_SECTION net)
set(CPACK_DEBIAN_APPLIANCE_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_APPLIANCE_PACKAGE_CONTROL_EXTRA
  "${_kyso_inst}/debian/appliance/postinst;${_kyso_inst}/debian/appliance/prerm;${_kyso_inst}/debian/appliance/postrm;${_kyso_inst}/debian/appliance/conffiles")
set(CPACK_DEBIAN_APPLIANCE_DESCRIPTION
"remote signing appliance for Kyso (CSC API over an HSM)
Kyso signs Vietnam's digital school transcripts (hoc ba so). The appliance
keeps signing keys in a hardware security module and signs for authenticated
teachers through the Cloud Signature Consortium API, each authorization bound
to exactly the hashes approved with a second factor. It runs as a dedicated
system user in a confined systemd service.")

set(CPACK_DEBIAN_VERIFYD_PACKAGE_NAME kyso-verifyd)
set(CPACK_DEBIAN_VERIFYD_PACKAGE_SECTION net)
# fonts-dejavu-core: the sealed PDF report is set in DejaVu Sans.
set(CPACK_DEBIAN_VERIFYD_PACKAGE_DEPENDS "adduser, fonts-dejavu-core")
set(CPACK_DEBIAN_VERIFYD_PACKAGE_CONTROL_EXTRA
  "${_kyso_inst}/debian/verifyd/postinst;${_kyso_inst}/debian/verifyd/prerm;${_kyso_inst}/debian/verifyd/postrm;${_kyso_inst}/debian/verifyd/conffiles")
set(CPACK_DEBIAN_VERIFYD_DESCRIPTION
"signature verification service for Vietnamese digital transcripts
Kyso signs Vietnam's digital school transcripts (hoc ba so). kyso-verifyd lets
anyone who receives one (a school, a university, a parent) check its
signatures on a web page in Vietnamese or English, or through an API that
answers a JSON report in ETSI TS 119 102 terms, or a PDF report sealed with
the service's own key. Documents are never kept. It runs as a dedicated
system user in a confined, stateless systemd service.")

include(CPack)
