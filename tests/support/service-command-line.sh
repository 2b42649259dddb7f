#!/bin/bash
# A mistake on the command line of a Kyso system service (kyso-appliance, kyso-verifyd), as IT
# meets it: a mistyped option or command, or no --config, is refused with exit 2, named, in
# Vietnamese and English (--help and --version: tests/shape/version-help.sh).
#   service-command-line.sh PROGRAM
set -uo pipefail
P="${1:?usage: $0 PROGRAM}"
name=$(basename "$P")
fail() { echo "FAIL: $name: $*" >&2; exit 1; }

for bad in "--bogus" "check-config --config x.toml --bogus" "frobnicate"; do
  # shellcheck disable=SC2086  # the words of $bad are separate arguments
  err=$("$P" $bad 2>&1 >/dev/null </dev/null)
  rc=$?
  [[ $rc == 2 ]] || fail "'$bad' exited $rc, not 2: $err"
  [[ $err == *"không hợp lệ"* && $err == *"invalid command line"* ]] ||
    fail "'$bad': not said in Vietnamese and English: $err"
  [[ $err == *"${bad##* }"* ]] || fail "'$bad': the mistake is not named: $err"
done
err=$("$P" 2>&1 >/dev/null </dev/null)
rc=$?
[[ $rc == 2 && $err == *"--config"* ]] || fail "no arguments: exit $rc, $err"
echo PASS
