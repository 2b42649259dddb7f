#!/bin/bash
# cpack -G DEB in the build tree, into a fresh output directory; checks one .deb per expected
# package was made.
# Usage: build-debs.sh <CPackConfig.cmake> <output dir> <package>...
set -euo pipefail
CONFIG=$1 OUT=$2
shift 2
rm -rf "$OUT"
mkdir -p "$OUT"
cpack -G DEB --config "$CONFIG" -B "$OUT"
for pkg in "$@"; do
  deb=$(find "$OUT" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
  [[ -n $deb ]] || { echo "FAIL: no ${pkg}_*.deb in $OUT" >&2; exit 1; }
  echo "ok: $(basename "$deb")"
  dpkg-deb --field "$deb" Package Version Architecture Depends
done
echo PASS
