#!/bin/bash
# Each program answers --version (PROJECT_VERSION, plus the git revision in a checkout) and
# --help, on stdout, with exit status 0.
# Usage: version-help.sh <version> <program>...
set -uo pipefail
version=$1
shift
fails=0
for prog in "$@"; do
  name=$(basename "$prog")
  out=$("$prog" --version 2>/dev/null)
  rc=$?
  if ((rc != 0)) || ! grep -Eq "^$name ${version//./\\.}( \(git [0-9a-z.-]+\))?\$" <<<"$out"; then
    echo "FAIL: $name --version: exit $rc, printed: $out"
    fails=$((fails + 1))
  else
    echo "ok: $out"
  fi
  out=$("$prog" --help 2>/dev/null)
  rc=$?
  if ((rc != 0)) || ! grep -q "$name" <<<"$out"; then
    echo "FAIL: $name --help: exit $rc, printed: $out"
    fails=$((fails + 1))
  else
    echo "ok: $name --help"
  fi
done
exit $((fails > 0))
