#!/usr/bin/env bash
# A scripted pinentry for remote signing through the agent (tests/remote, bench/remote): speaks
# the Assuan protocol as GnuPG's pinentry programs do and answers each GETPIN by its prompt,
# like a user with a password, the credential's PIN and an authenticator app:
#   prompt "Mật khẩu:" / "Password:"  ->  KYSO_PINENTRY_PASSWORD
#   prompt "Mã OTP:" / "OTP:"         ->  a TOTP from `oathtool --totp --base32 KYSO_PINENTRY_TOTP`
#                                         (KYSO_PINENTRY_OTP, if set, is typed instead: "wrong" tests)
#   any other prompt (the PIN)        ->  KYSO_PINENTRY_PIN
# Successive OTPs step through the time windows around now (-2, -1, 0, 1, ...; counter in
# KYSO_PINENTRY_OTP_STEPS), because the service accepts each time step once: the appliance under
# test allows a window wide enough for that.
#   KYSO_PINENTRY_ACTION  ok (default) | cancel
#   KYSO_PINENTRY_LOG     one line per dialog: "<CONFIRM|GETPIN> at=<unix time> title=... prompt=...
#                         desc=..." (the time it answered: benchmarks start the clock there)
set -u
action="${KYSO_PINENTRY_ACTION:-ok}"
log="${KYSO_PINENTRY_LOG:-/dev/null}"
decode() { printf '%b' "${1//%/\\x}"; }
otp() {
  if [[ -n "${KYSO_PINENTRY_OTP:-}" ]]; then printf '%s' "$KYSO_PINENTRY_OTP"; return; fi
  local steps="${KYSO_PINENTRY_OTP_STEPS:-}" n=0
  if [[ -n "$steps" ]]; then
    exec 9>>"$steps.lock"
    flock 9
    n=$(cat "$steps" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$steps"
    flock -u 9
  fi
  oathtool --totp --base32 --now="@$(($(date +%s) + 30 * (n - 2)))" "$KYSO_PINENTRY_TOTP"
}
title="" desc="" prompt=""
echo "OK Pleased to meet you"
while IFS= read -r line; do
  line="${line%$'\r'}"
  cmd="${line%% *}"
  arg=""
  [[ "$line" == *" "* ]] && arg="${line#* }"
  case "$cmd" in
    SETTITLE) title="$(decode "$arg")"; echo OK ;;
    SETDESC) desc="$(decode "$arg")"; echo OK ;;
    SETPROMPT) prompt="$(decode "$arg")"; echo OK ;;
    GETPIN | CONFIRM)
      printf '%s at=%s title=%s prompt=%s desc=%s\n' "$cmd" "$(date +%s.%N)" "$title" "$prompt" \
        "${desc//$'\n'/ | }" >>"$log"
      if [[ "$action" == cancel ]]; then
        echo "ERR 83886179 Operation cancelled <Pinentry>"
      elif [[ "$cmd" == CONFIRM ]]; then
        echo OK
      else
        case "$prompt" in
          *OTP*) answer="$(otp)" ;;
          "Mật khẩu:" | "Password:") answer="${KYSO_PINENTRY_PASSWORD:-}" ;;
          *) answer="${KYSO_PINENTRY_PIN:-}" ;;
        esac
        printf 'D %s\nOK\n' "$answer"
      fi ;;
    BYE) echo "OK closing connection" 2>/dev/null; exit 0 ;;
    *) echo OK ;;
  esac
done
