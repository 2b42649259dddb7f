#!/bin/bash
# Runs a command beside a journald of its own: in a private mount namespace (unshare --mount),
# fresh tmpfs over /run/systemd, /run/log and /var/log/journal, and systemd-journald started
# there, so that sd_journal_send and sd_journal_open in the command meet a real journald without
# touching the machine's (containers and CI runners have none running).
#   with-journald.sh COMMAND [ARG...]
# Exit 77 (ctest: skipped) when the namespace or journald cannot be had, with the reason.
set -euo pipefail
JOURNALD=/lib/systemd/systemd-journald
if [[ ${KYSO_IN_JOURNAL_NS:-} != 1 ]]; then
  [[ -x $JOURNALD ]] || { echo "SKIP: $JOURNALD not installed" >&2; exit 77; }
  if ! unshare --mount --propagation private true 2>/dev/null; then
    echo "SKIP: no private mount namespace here (unshare --mount needs CAP_SYS_ADMIN)" >&2
    exit 77
  fi
  exec env KYSO_IN_JOURNAL_NS=1 unshare --mount --propagation private "$0" "$@"
fi
for d in /run/systemd /run/log /var/log/journal; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p /run/systemd/journal
"$JOURNALD" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [[ -S /run/systemd/journal/socket ]] && break
  sleep 0.05
done
[[ -S /run/systemd/journal/socket ]] || { echo "SKIP: systemd-journald did not start" >&2; exit 77; }
"$@"
