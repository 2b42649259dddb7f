#!/usr/bin/env bash
# Builds the compiled libraries kyso-agent.exe and kyso.exe link, for x86_64-w64-mingw32, from
# Debian 12's source packages (issue 18, docs/windows.md). Each goes to a cache outside the
# checkout, one directory per package and Debian version:
#   ${KYSO_WIN_DEPS:-~/.cache/kyso/win-deps}/<name>-<debian version>/{include,lib}
# and a directory already there (with its .done stamp) is reused, so only the first build of a
# machine, or a new Debian version, pays for it. Static libraries only: the programs are one .exe
# each, with nothing to install beside them.
#
# Prints how long each library took, and writes the prefixes it used, ';'-separated, to
# $KYSO_WIN_DEPS/prefix-path (what ./run windows passes to CMake as CMAKE_PREFIX_PATH).
#
# Header-only dependencies (Boost.Asio/Beast, nlohmann-json, spdlog and fmt in header-only
# mode, CLI11, toml++) come from Debian's -dev packages as they are: cmake/mingw-w64.cmake
# points at them. zlib is not needed by the agent or the CLI without the documents module.
set -euo pipefail
HOST=x86_64-w64-mingw32
CACHE="${KYSO_WIN_DEPS:-$HOME/.cache/kyso/win-deps}"
JOBS="${KYSO_JOBS:-2}"
mkdir -p "$CACHE/src"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }

# apt-get source needs deb-src lines; Debian's images ship only deb ones. Same mirrors, same
# suites, as a file of our own that is left in place for the next run.
ensure_deb_src() {
  if apt-cache showsrc sqlite3 2>/dev/null | grep -q '^Package:'; then return 0; fi
  say "adding deb-src lines for Debian's mirrors (/etc/apt/sources.list.d/kyso-deb-src.sources)"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  local f=/etc/apt/sources.list.d/debian.sources
  if [[ -f $f ]]; then
    sed 's/^Types:.*/Types: deb-src/' "$f" | $sudo tee /etc/apt/sources.list.d/kyso-deb-src.sources >/dev/null
  else
    grep -h '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
      $sudo tee /etc/apt/sources.list.d/kyso-deb-src.list >/dev/null
  fi
  $sudo apt-get update -qq
}

# Source versions apt knows for PACKAGE, newest first.
src_versions() {
  apt-cache showsrc --only-source "$1" | sed -n 's/^Version: //p' | sort -u | sort -rV
}

# fetch PACKAGE NAME: sets VERSION and PREFIX; CACHED=1 when PREFIX is built already, else
# SRC is the unpacked Debian source (with Debian's patches applied) to build from. A version
# the index lists but the mirror no longer has (a security update superseded) is skipped.
fetch() {
  local pkg="$1" name="$2" v
  CACHED=0
  local versions; mapfile -t versions < <(src_versions "$pkg")
  ((${#versions[@]})) || { echo "no Debian source for $pkg (deb-src lines?)" >&2; return 1; }
  for v in "${versions[@]}"; do
    if [[ -f "$CACHE/$name-$v/.done" ]]; then VERSION="$v"; PREFIX="$CACHE/$name-$v"; CACHED=1; return 0; fi
  done
  for v in "${versions[@]}"; do
    local dir="$CACHE/src/$name-$v"
    rm -rf "$dir"; mkdir -p "$dir"
    if (cd "$dir" && apt-get source -qq --download-only "$pkg=$v" >/dev/null 2>&1); then
      (cd "$dir" && dpkg-source -x --no-check ./*.dsc src >/dev/null)
      VERSION="$v"; PREFIX="$CACHE/$name-$v"; SRC="$dir/src"
      return 0
    fi
    echo "  $pkg $v: not on the mirror, trying the next version" >&2
  done
  return 1
}

PREFIXES=()
# dep PACKAGE NAME BUILD_FUNCTION
dep() {
  local pkg="$1" name="$2" fn="$3"
  fetch "$pkg" "$name"
  if ((CACHED)); then
    printf '  %-8s %-22s cached (%s)\n' "$name" "$VERSION" "$PREFIX"
  else
    local start=$SECONDS
    say "building $name $VERSION for $HOST (Debian source $pkg)"
    rm -rf "$PREFIX"
    # set -e holds inside the subshell only outside a condition, hence the explicit rc.
    local rc=0
    set +e
    (set -e; cd "$SRC"; "$fn" "$PREFIX") >"$CACHE/src/$name-$VERSION.log" 2>&1
    rc=$?
    set -e
    ((rc == 0)) || {
      echo "building $name failed; the log's end ($CACHE/src/$name-$VERSION.log):" >&2
      tail -30 "$CACHE/src/$name-$VERSION.log" >&2
      return 1
    }
    touch "$PREFIX/.done"
    rm -rf "$CACHE/src/$name-$VERSION"
    printf '  %-8s %-22s built in %d s\n' "$name" "$VERSION" $((SECONDS - start))
  fi
  PREFIXES+=("$PREFIX")
}

# OpenSSL: libcrypto and libssl, static; build_libs leaves out the command line program.
build_openssl() {
  ./Configure mingw64 --cross-compile-prefix="$HOST-" no-shared no-tests \
    --prefix="$1" --libdir=lib --openssldir="$1/ssl"
  make -j"$JOBS" build_libs
  make install_dev
}

# SQLite: Debian's source is SQLite's full tree; its amalgamation (sqlite3.c) is generated with
# the build machine's compiler and tclsh, then compiled alone for Windows.
build_sqlite() {
  mkdir -p native && (cd native && ../configure --disable-tcl >/dev/null && make -j"$JOBS" sqlite3.c)
  mkdir -p "$1/include" "$1/lib/pkgconfig"
  $HOST-gcc -O2 -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION \
    -c native/sqlite3.c -o native/sqlite3.o
  $HOST-ar rcs "$1/lib/libsqlite3.a" native/sqlite3.o
  cp native/sqlite3.h native/sqlite3ext.h "$1/include/"
}

# libusb: the token detection's USB enumeration (Windows' own backend, no driver needed to list).
build_libusb() {
  ./configure --host="$HOST" --prefix="$1" --enable-static --disable-shared --disable-udev
  make -j"$JOBS"
  make install
}

start=$SECONDS
ensure_deb_src
say "compiled dependencies for $HOST in $CACHE"
dep openssl openssl build_openssl
dep sqlite3 sqlite build_sqlite
dep libusb-1.0 libusb build_libusb
(IFS=';'; echo "${PREFIXES[*]}") >"$CACHE/prefix-path"
say "dependencies ready in $((SECONDS - start)) s; CMAKE_PREFIX_PATH in $CACHE/prefix-path"
