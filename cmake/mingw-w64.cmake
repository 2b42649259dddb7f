# Cross-compiling Kyso for 64-bit Windows with Debian's MinGW-w64 (issue 18, docs/windows.md):
#   cmake -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake -S . -B build-windows
# (./run windows does it). The posix thread model: std::thread and std::mutex over winpthreads.
# The compiled dependencies come from installer/windows/build-deps.sh's cache: KYSO_WIN_DEPS
# (default ~/.cache/kyso/win-deps) and the prefixes its last run listed in prefix-path; the
# header-only ones from Debian's /usr/include, through cmake/KysoWindowsDeps.cmake.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(KYSO_MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${KYSO_MINGW_TRIPLET}-gcc-posix)
set(CMAKE_CXX_COMPILER ${KYSO_MINGW_TRIPLET}-g++-posix)
set(CMAKE_RC_COMPILER ${KYSO_MINGW_TRIPLET}-windres)
set(CMAKE_AR ${KYSO_MINGW_TRIPLET}-gcc-ar-posix CACHE FILEPATH "")
set(CMAKE_RANLIB ${KYSO_MINGW_TRIPLET}-gcc-ranlib-posix CACHE FILEPATH "")

if(NOT KYSO_WIN_DEPS)
  if(DEFINED ENV{KYSO_WIN_DEPS})
    set(KYSO_WIN_DEPS "$ENV{KYSO_WIN_DEPS}")
  else()
    set(KYSO_WIN_DEPS "$ENV{HOME}/.cache/kyso/win-deps")
  endif()
endif()
set(KYSO_WIN_DEPS "${KYSO_WIN_DEPS}" CACHE PATH "installer/windows/build-deps.sh's cache")
if(NOT EXISTS "${KYSO_WIN_DEPS}/prefix-path")
  message(FATAL_ERROR "no ${KYSO_WIN_DEPS}/prefix-path: run installer/windows/build-deps.sh (./run windows does)")
endif()
file(READ "${KYSO_WIN_DEPS}/prefix-path" KYSO_WIN_DEPS_PREFIXES)
string(STRIP "${KYSO_WIN_DEPS_PREFIXES}" KYSO_WIN_DEPS_PREFIXES)

# Only MinGW's sysroot and the dependency cache are searched for libraries and headers: never
# the build machine's /usr/include or /usr/lib.
set(CMAKE_FIND_ROOT_PATH /usr/${KYSO_MINGW_TRIPLET} ${KYSO_WIN_DEPS_PREFIXES})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Windows 10 APIs (Asio's and ours); Beast's objects exceed COFF's 2^16 sections; one .exe
# each, with libstdc++, libgcc and winpthreads inside.
set(CMAKE_C_FLAGS_INIT "-D_WIN32_WINNT=0x0A00 -DWINVER=0x0A00 -DUNICODE -D_UNICODE")
set(CMAKE_CXX_FLAGS_INIT "-D_WIN32_WINNT=0x0A00 -DWINVER=0x0A00 -DUNICODE -D_UNICODE -Wa,-mbig-obj")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")
# The tests run the .exe files under Wine (tests/windows).
set(CMAKE_CROSSCOMPILING_EMULATOR wine)
