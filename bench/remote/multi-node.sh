#!/usr/bin/env bash
# bench/remote-sign, multi-node mode: 1..N kyso-appliance processes on one PostgreSQL database
# behind HAProxy (leastconn, GET /health checks), each node's HSM slowed to a network HSM's rate
# by the fault module (KYSO_FAULT_SIGN_DELAY_US before every C_Sign) so the HSM and not the CPU
# bounds a node; one client (Kyso's CscClient/RemoteSigner) signs H hashes on 2 connections per
# node. Prints sig/s per node count, the speed-up over one node and the ratio to N x raw (C_Sign
# on the same slowed module and as many sessions as a node signs with).
#
#   bench/remote/multi-node.sh BUILD_DIR TOKEN_DIR [NODES=3] [HASHES=2000] [DELAY_US=20000] [THREADS=2]
# TOKEN_DIR: a token made by tests/pki/make-demo-token.sh. Needs postgresql and haproxy (Debian).
set -euo pipefail
BUILD="$(cd "${1:?usage: $0 BUILD_DIR TOKEN_DIR [NODES] [HASHES] [DELAY_US] [THREADS]}" && pwd)"
FIXTURE="$(cd "${2:?}" && pwd)"
NODES="${3:-3}" HASHES="${4:-2000}" DELAY="${5:-20000}" THREADS="${6:-2}"
HERE="$(cd "$(dirname "$0")" && pwd)"
APPLIANCE="$BUILD/remote-sign/appliance/kyso-appliance"
BENCH="$BUILD/bench/remote/kyso-bench-remote-sign"
FAULT="$(find "$BUILD" -name kyso_fault_pkcs11.so -o -name libkyso_fault_pkcs11.so | head -1)"
PREPARE="$HERE/../../tests/remote/prepare-appliance.sh"
W="$(mktemp -d /tmp/kyso-multinode.XXXXXX)"
PIDS=()
# shellcheck source=postgres-cluster.sh
. "$HERE/postgres-cluster.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop
  rm -rf "$W"
}
trap cleanup EXIT
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }

pg_start

printf 'bench/remote-sign multi-node: %s hashes, RSA-3072 (the principal key), HSM delay %s us per C_Sign, %s sessions per node, PostgreSQL %s, HAProxy leastconn; load %s\n' \
  "$HASHES" "$DELAY" "$THREADS" "$(basename "$(dirname "$PGBIN")")" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %10s %10s %10s\n' nodes "sig/s" speedup "N x raw" ratio
ONE=""
for n in $(seq "$NODES"); do
  DB="kyso_$n"
  pg_database "$DB"
  D="$W/run$n"
  mkdir -p "$D"
  KYSO_REMOTE_STATE_DB="postgresql://kyso_app@127.0.0.1:$PGPORT/$DB" KYSO_REMOTE_MODULE="$FAULT" \
    KYSO_REMOTE_SIGN_THREADS="$THREADS" "$PREPARE" "$APPLIANCE" "$D/node1" "$FIXTURE" >/dev/null
  RUN_PIDS=()
  for k in $(seq "$n"); do
    N="$D/node$k"
    if [ "$k" -gt 1 ]; then
      cp -a "$D/node1" "$N" && rm -rf "$N/tokens" "$N/port" && cp -a "$FIXTURE/tokens" "$N/tokens"
      printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$N" >"$N/softhsm2.conf"
    fi
    SOFTHSM2_CONF="$N/softhsm2.conf" KYSO_FAULT_SIGN_DELAY_US="$DELAY" \
      "$APPLIANCE" --config "$N/appliance.toml" --port-file "$N/port" 2>"$N/log" &
    RUN_PIDS+=($!)
  done
  LB="$(free_port)"
  {
    printf 'global\n  maxconn 512\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n'
    printf 'frontend csc\n  bind 127.0.0.1:%s\n  default_backend nodes\n' "$LB"
    printf 'backend nodes\n  balance leastconn\n  option httpchk\n  http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost\n  http-check expect status 200\n'
    for k in $(seq "$n"); do
      wait_file "$D/node$k/port"
      printf '  server n%s 127.0.0.1:%s check check-ssl verify none inter 500 fall 2 rise 1\n' "$k" "$(cat "$D/node$k/port")"
    done
  } >"$D/haproxy.cfg"
  /usr/sbin/haproxy -db -f "$D/haproxy.cfg" >"$D/haproxy.log" 2>&1 &
  RUN_PIDS+=($!)
  PIDS+=("${RUN_PIDS[@]}")
  sleep 1.5  # the first health checks
  OUT="$(SOFTHSM2_CONF="$FIXTURE/softhsm2.conf" KYSO_FAULT_SIGN_DELAY_US="$DELAY" "$BENCH" \
    --dir "$FIXTURE" --url "https://127.0.0.1:$LB/csc/v2" --ca "$D/node1/ca.crt" \
    --hashes "$HASHES" --pipeline $((2 * n)) --threads "$THREADS" --raw-module "$FAULT")"
  RATE="$(echo "$OUT" | awk '{print $2}')" RAW="$(echo "$OUT" | awk '{print $4}')"
  [ -z "$ONE" ] && ONE="$RATE"
  awk -v n="$n" -v r="$RATE" -v one="$ONE" -v raw="$RAW" \
    'BEGIN { printf "%-6d %10.0f %10.2f %10.0f %10.2f\n", n, r, r / one, n * raw, r / (n * raw) }'
  for p in "${RUN_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${RUN_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
done
