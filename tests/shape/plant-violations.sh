#!/bin/bash
# The include-graph check fails on each kind of violation: planted one at a time in a copy of
# the source tree (and of the target graph), each must fail with its own message, and the
# untouched copy must pass.
# Usage: plant-violations.sh <kyso-target-graph.tsv> <source dir>
set -euo pipefail
graph=$1
src=$2
check="$(dirname "$0")/include_graph.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The C and C++ sources of the modules, tests and benches, copied once.
mkdir -p "$tmp/tree"
(cd "$src" && find core pkcs11 formats remote-sign firmware-config agent cli tests bench \
  -path '*/node_modules' -prune -o -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \
  -o -name '*.c' -o -name '*.in' \) -print0 | tar cf - --null -T -) | tar xf - -C "$tmp/tree"

# Undoes the last plant: the planted file and the graph as they were.
planted=""
copy_tree() {
  if [[ -n $planted ]]; then
    cp "$tmp/saved" "$tmp/tree/$planted"
    planted=""
  fi
  cp "$graph" "$tmp/graph.tsv"
}

run_check() { python3 "$check" --graph "$tmp/graph.tsv" --root "$tmp/tree"; }

fails=0
# expect <description> <expected line fragment>: the check must fail and say it.
expect() {
  local out
  if out=$(run_check 2>&1); then
    echo "NOT CAUGHT: $1"
    fails=$((fails + 1))
  elif ! grep -qF -- "$2" <<<"$out"; then
    echo "CAUGHT WITHOUT THE EXPECTED MESSAGE: $1 (wanted: $2)"
    echo "$out"
    fails=$((fails + 1))
  else
    echo "caught: $1"
    grep -F -- "$2" <<<"$out" | sed 's/^/  /'
  fi
}

plant() {  # plant <file> <include line>: the include as the file's first line
  cp "$tmp/tree/$1" "$tmp/saved"
  planted=$1
  sed -i "1i $2" "$tmp/tree/$1"
}

copy_tree
run_check >/dev/null || { echo "the untouched copy fails:"; run_check; exit 1; }

copy_tree
plant core/src/error.cpp '#include "kyso/agent/service.hpp"'
expect "core includes the agent" "core/src/error.cpp:1: core includes kyso/agent/ (agent)"

copy_tree
plant agent/src/audit.cpp '#include "kyso/appliance/state_store.hpp"'
expect "the agent includes the appliance" "agent/src/audit.cpp:1: agent includes kyso/appliance/"

copy_tree
plant remote-sign/client/src/csc_client.cpp '#include "kyso/firmware_config/appliance_config.hpp"'
expect "the CSC client includes firmware-config (the old cycle)" \
  "remote-sign/client/src/csc_client.cpp:1: remote includes kyso/firmware_config/"

copy_tree
plant tests/unit/test_errors.cpp '#include "kyso/formats/cms.hpp"'
expect "a test includes a module its target does not link" \
  "tests/unit/test_errors.cpp:1: includes kyso/formats/ (formats) but its target unit_core does not link formats"

copy_tree
plant cli/src/cmd_tokens.cpp '#include "kyso/nosuchmodule/x.hpp"'
expect "an include of no module" "includes kyso/nosuchmodule/, which is no module"

copy_tree
awk -F'\t' 'BEGIN{OFS="\t"} $1=="kyso_pkcs11"{$4=$4";kyso::formats_base"} {print}' \
  "$graph" >"$tmp/graph.tsv"
expect "pkcs11 links formats" "target kyso_pkcs11 (pkcs11) links kyso_formats_base (formats)"

if ((fails > 0)); then
  echo "$fails planted violation(s) not caught"
  exit 1
fi
echo "every planted violation was caught"
