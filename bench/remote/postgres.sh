#!/usr/bin/env bash
# bench/remote-sign with the appliance's state on PostgreSQL (a throw-away cluster on loopback)
# instead of its SQLite default: the same benchmark, the same figures (agent and client against
# raw C_Sign on the same sessions), one node. The CPU table counts PostgreSQL's processes too.
#
#   bench/remote/postgres.sh BUILD_DIR TOKEN_DIR [kyso-bench-remote-sign options]
# TOKEN_DIR: a token made by tests/pki/make-demo-token.sh. Needs postgresql (Debian).
set -euo pipefail
BUILD="$(cd "${1:?usage: $0 BUILD_DIR TOKEN_DIR [bench options]}" && pwd)"
FIXTURE="$(cd "${2:?usage: $0 BUILD_DIR TOKEN_DIR [bench options]}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
APPLIANCE="$BUILD/remote-sign/appliance/kyso-appliance"
W="$(mktemp -d /tmp/kyso-bench-pg.XXXXXX)"
# shellcheck source=postgres-cluster.sh
. "$HERE/postgres-cluster.sh"
trap 'pg_stop; rm -rf "$W"' EXIT
pg_start
pg_database kyso_bench
"$BUILD/bench/remote/kyso-bench-remote-sign" --dir "$FIXTURE" \
  --state-db "postgresql://kyso_app@127.0.0.1:$PGPORT/kyso_bench" \
  --db-pid "$(head -1 "$W/pg/postmaster.pid")" "${@:3}"
