#!/usr/bin/env bash
# kyso-agent and kyso-appliance killed with SIGKILL at random points of a batch, 50 times in a
# row each (issue 17, item 4): the agent_crash and remote_crash test cases with
# KYSO_CRASH_REPEATS=50 (run directly: ctest's 120 s bound is for the 3-kill default), on the
# build's demo token. KYSO_CRASH_SEED=N replays a run (each prints its seed first).
#   tests/agent/crash-loop.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)"
export KYSO_CRASH_REPEATS="${2:-50}"
export KYSO_TEST_DIR="$BUILD/test-pki"
cd "$BUILD"
[[ -f "$KYSO_TEST_DIR/manifest.json" ]] || ctest -R '^pki\.setup$' >/dev/null
SECONDS=0
tests/agent_crash "[crash]"
echo "agent: ${SECONDS} s"
SECONDS=0
tests/remote_crash "[crash]"
echo "appliance: ${SECONDS} s"
