#!/usr/bin/env bash
# kyso-agent killed with SIGKILL at random points of a batch, 50 times in a row (issue 17, item
# 4): the agent_crash test case with KYSO_CRASH_REPEATS=50, on a fresh demo token.
#   tests/agent/crash-loop.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
export KYSO_CRASH_REPEATS="${2:-50}"
cd "$BUILD"
exec ctest -V -R '^agent_crash:'
