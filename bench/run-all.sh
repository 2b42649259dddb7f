#!/usr/bin/env bash
# ./run bench: every benchmark on a fresh demo token. Figures are ratios against raw PKCS#11
# on the same token in the same run, plus absolute numbers.
set -euo pipefail
BUILD="${1:?usage: run-all.sh BUILD_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$(mktemp -d /tmp/kyso-bench.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
"$ROOT/tests/pki/make-demo-token.sh" "$DIR/token" 2>/dev/null
export SOFTHSM2_CONF="$DIR/token/softhsm2.conf"

"$BUILD/bench/token/kyso-bench-token-sign" --dir "$DIR/token" "${@:2}"
for b in "$BUILD"/bench/*/kyso-bench-*; do
  [[ "$(basename "$b")" == kyso-bench-token-sign ]] && continue
  [[ -x "$b" ]] || continue
  echo
  "$b" --dir "$DIR/token"
done
