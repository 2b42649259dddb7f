# The Windows build's dependencies (issue 18, docs/windows.md), included by the top-level
# CMakeLists.txt when cross-compiling with cmake/mingw-w64.cmake.
#
# Header-only libraries come from Debian's /usr/include, but /usr/include itself must never be
# on the cross compiler's path (its glibc headers would shadow MinGW's): each library's own
# directory is linked into a private include directory, and find_package() finds a small
# config file written into CMake's package redirects directory, which defines the target the
# project links (Boost::headers, spdlog::spdlog, ...). Compiled libraries come from
# installer/windows/build-deps.sh's cache (CMAKE_FIND_ROOT_PATH, set by the toolchain file).

set(KYSO_WIN_HEADERS "${CMAKE_BINARY_DIR}/windows-headers")
file(MAKE_DIRECTORY "${KYSO_WIN_HEADERS}")
foreach(dir boost nlohmann spdlog fmt CLI toml++ catch2)
  if(NOT EXISTS "/usr/include/${dir}")
    message(FATAL_ERROR "/usr/include/${dir} is missing (installer/deps-debian.txt)")
  endif()
  file(CREATE_LINK "/usr/include/${dir}" "${KYSO_WIN_HEADERS}/${dir}" SYMBOLIC)
endforeach()

# kyso_win_redirect(<Package> <version> <config body>)
function(kyso_win_redirect package version body)
  string(TOLOWER "${package}" lower)
  file(WRITE "${CMAKE_FIND_PACKAGE_REDIRECTS_DIR}/${lower}-config.cmake" "${body}\n")
  file(WRITE "${CMAKE_FIND_PACKAGE_REDIRECTS_DIR}/${lower}-config-version.cmake"
       "set(PACKAGE_VERSION ${version})\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n")
endfunction()

# kyso_win_headers(<Package> <version> <target> [definitions...])
function(kyso_win_headers package version target)
  set(defs "")
  if(ARGN)
    set(defs "set_property(TARGET ${target} PROPERTY INTERFACE_COMPILE_DEFINITIONS ${ARGN})")
  endif()
  kyso_win_redirect(${package} ${version} "
if(NOT TARGET ${target})
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES \"${KYSO_WIN_HEADERS}\")
  ${defs}
endif()
set(${package}_FOUND TRUE)")
endfunction()

# Asio on Windows: Winsock 2 and its Microsoft extensions.
kyso_win_redirect(Boost 1.81.0 "
if(NOT TARGET Boost::headers)
  add_library(Boost::headers INTERFACE IMPORTED GLOBAL)
  set_property(TARGET Boost::headers PROPERTY INTERFACE_INCLUDE_DIRECTORIES \"${KYSO_WIN_HEADERS}\")
  set_property(TARGET Boost::headers PROPERTY INTERFACE_LINK_LIBRARIES ws2_32 mswsock)
endif()
set(Boost_FOUND TRUE)")
kyso_win_headers(nlohmann_json 3.11.2 nlohmann_json::nlohmann_json)
# spdlog and fmt in header-only mode: no SPDLOG_COMPILED_LIB; Debian's spdlog uses fmt
# outside it (tweakme.h), header-only here.
kyso_win_headers(spdlog 1.10.0 spdlog::spdlog SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY)
kyso_win_headers(CLI11 2.3.1 CLI11::CLI11)
kyso_win_headers(tomlplusplus 3.3.0 tomlplusplus::tomlplusplus)
kyso_win_headers(Catch2 2.13.10 Catch2::Catch2)

# SQLite: the amalgamation build-deps.sh compiled.
find_library(KYSO_WIN_SQLITE sqlite3 REQUIRED)
find_path(KYSO_WIN_SQLITE_INCLUDE sqlite3.h REQUIRED)
kyso_win_redirect(SQLite3 3.40.1 "
if(NOT TARGET SQLite::SQLite3)
  add_library(SQLite::SQLite3 STATIC IMPORTED GLOBAL)
  set_property(TARGET SQLite::SQLite3 PROPERTY IMPORTED_LOCATION \"${KYSO_WIN_SQLITE}\")
  set_property(TARGET SQLite::SQLite3 PROPERTY INTERFACE_INCLUDE_DIRECTORIES \"${KYSO_WIN_SQLITE_INCLUDE}\")
endif()
set(SQLite3_FOUND TRUE)")

# libusb: no pkg-config for the cross build; the same target name as pkg_check_modules makes.
find_library(KYSO_WIN_LIBUSB usb-1.0 REQUIRED)
find_path(KYSO_WIN_LIBUSB_INCLUDE libusb.h PATH_SUFFIXES libusb-1.0 REQUIRED)
add_library(PkgConfig::LIBUSB STATIC IMPORTED GLOBAL)
set_property(TARGET PkgConfig::LIBUSB PROPERTY IMPORTED_LOCATION "${KYSO_WIN_LIBUSB}")
set_property(TARGET PkgConfig::LIBUSB PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${KYSO_WIN_LIBUSB_INCLUDE}")

# OpenSSL: static libcrypto needs Winsock and the certificate store API.
set(OPENSSL_USE_STATIC_LIBS TRUE)
find_package(OpenSSL 3.0 REQUIRED)
set_property(TARGET OpenSSL::Crypto APPEND PROPERTY INTERFACE_LINK_LIBRARIES ws2_32 crypt32)
