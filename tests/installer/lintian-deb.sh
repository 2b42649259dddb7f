#!/bin/bash
# lintian on one built package: no errors (warnings are printed, and allowed).
# Usage: lintian-deb.sh <output dir> <package>
set -euo pipefail
OUT=$1 PKG=$2
deb=$(find "$OUT" -maxdepth 1 -name "${PKG}_*.deb" -print -quit)
[[ -n $deb ]] || { echo "FAIL: no ${PKG}_*.deb in $OUT (did installer.cpack run?)" >&2; exit 1; }
if ! command -v lintian >/dev/null; then
  echo "FAIL: lintian is not installed (./run deps installs it)" >&2
  exit 1
fi
rc=0
report=$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1) || rc=$?
printf '%s\n' "$report" | grep -v "running with root privileges" || true
if ((rc != 0)) || grep -q '^E: ' <<<"$report"; then
  echo "FAIL: lintian reports errors for $PKG" >&2
  exit 1
fi
echo "PASS: lintian: no errors for $(basename "$deb") ($(grep -c '^W: ' <<<"$report" || true) warnings)"
