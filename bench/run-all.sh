#!/usr/bin/env bash
# ./run bench: every benchmark on a fresh demo token. Figures are ratios against raw PKCS#11
# on the same token in the same run, plus absolute numbers.
#   bench/run-all.sh BUILD_DIR [token bench options]
#   bench/run-all.sh BUILD_DIR --smoke   tiny sizes, one round each: that every benchmark still
#                                        runs to the end (ctest bench.smoke); its figures mean nothing
set -euo pipefail
BUILD="${1:?usage: run-all.sh BUILD_DIR [--smoke | token bench options]}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SMOKE=0
if [[ "${2:-}" == --smoke ]]; then SMOKE=1; fi
DIR="$(mktemp -d /tmp/kyso-bench.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
"$ROOT/tests/pki/make-demo-token.sh" "$DIR/token" 2>/dev/null
export SOFTHSM2_CONF="$DIR/token/softhsm2.conf"

# The options of one benchmark: none for a real run, tiny sizes for --smoke.
options() {
  if ((SMOKE == 0)); then return; fi
  case "$1" in
    kyso-bench-token-sign) echo --rsa 20 --ec 50 --rounds 1 ;;
    kyso-bench-agent-sign) echo --items 40 --rounds 1 --singles 2 ;;
    kyso-bench-format-sign) echo --n 10 --rounds 1 --big-mb 1 --school 20 --lt 1 ;;
    kyso-bench-remote-sign) echo --hashes 100 --rounds 1 ;;
    kyso-bench-verify) echo --n 4 --rounds 1 --clients 2 ;;
    kyso-bench-token-speed) echo --items 4 --singles 2 --rounds 1 --delay-ms 5 ;;
  esac
}

if ((SMOKE)); then
  # shellcheck disable=SC2046
  "$BUILD/bench/token/kyso-bench-token-sign" --dir "$DIR/token" $(options kyso-bench-token-sign)
else
  "$BUILD/bench/token/kyso-bench-token-sign" --dir "$DIR/token" "${@:2}"
fi
for b in "$BUILD"/bench/*/kyso-bench-*; do
  [[ "$(basename "$b")" == kyso-bench-token-sign ]] && continue
  [[ -x "$b" ]] || continue
  echo
  # shellcheck disable=SC2046
  "$b" --dir "$DIR/token" $(options "$(basename "$b")")
done

# The hostile page (bench/web/hostile-page.mjs, issue 12): in smoke mode only, that the harness
# runs to the end (its targets fail on an agent without the fixes; the full 60 s run is
# `node bench/web/hostile-page.mjs --agent BUILD/agent/kyso-agent`, exit 1 on a missed target).
if ((SMOKE)) && [[ -x "$BUILD/agent/kyso-agent" ]] && command -v node >/dev/null; then
  echo
  node "$ROOT/bench/web/hostile-page.mjs" --agent "$BUILD/agent/kyso-agent" --token "$DIR/token" --smoke
fi
