#!/usr/bin/env bash
# The scripted user for every test, benchmark and the demo: speaks the Assuan protocol on
# stdin/stdout exactly as GnuPG's pinentry programs do, so the agent drives it as it would drive a
# real dialog, and answers like a user who reads the dialog and confirms.
#   KYSO_PINENTRY_ACTION       ok (default; "confirm" says the same): press OK / type the answer;
#                              cancel: press Cancel; hang: never answer (the agent's timeout or
#                              cancel must end it)
#   KYSO_PINENTRY_ACTION_FILE  if set and readable, its first word overrides the action (lets a
#                              test change the user's answer between dialogs of one running agent)
#   KYSO_PINENTRY_CANCEL_PERCENT  N (0-100): a user who, in N dialogs of 100 at random, presses
#                              Cancel whatever the action says (bench/soak)
#   KYSO_PINENTRY_LOG          one line per dialog: "<CONFIRM|GETPIN> at=<unix time> action=<action>
#                              title=... prompt=... desc=..." (decoded, line breaks shown as " | ";
#                              the time it answered: benchmarks start the clock there)
# GETPIN answers by the prompt, like a user with a password, a PIN and an authenticator app:
#   prompt "Mật khẩu:" / "Password:"  ->  KYSO_PINENTRY_PASSWORD
#   prompt containing "OTP"           ->  a TOTP from `oathtool --totp --base32 KYSO_PINENTRY_TOTP`
#                                         (KYSO_PINENTRY_OTP, if set, is typed instead: "wrong" tests)
#   any other prompt (the PIN)        ->  KYSO_PINENTRY_PIN
# Successive OTPs step through the time windows around now (-2, -1, 0, 1, ...; counter in the file
# KYSO_PINENTRY_OTP_STEPS), because a signing service accepts each time step once: the appliance
# under test allows a window wide enough for that.
set -u
action="${KYSO_PINENTRY_ACTION:-ok}"
if [[ -n "${KYSO_PINENTRY_ACTION_FILE:-}" && -r "$KYSO_PINENTRY_ACTION_FILE" ]]; then
  read -r action _ <"$KYSO_PINENTRY_ACTION_FILE" || true
fi
if ((${KYSO_PINENTRY_CANCEL_PERCENT:-0} > 0 && RANDOM % 100 < ${KYSO_PINENTRY_CANCEL_PERCENT:-0})); then
  action=cancel
fi
log="${KYSO_PINENTRY_LOG:-/dev/null}"
# GPG_ERR_CANCELED (99) from GPG_ERR_SOURCE_PINENTRY (5): what a real pinentry answers on Cancel.
readonly CANCELLED="ERR 83886179 Operation cancelled <Pinentry>"

# Assuan percent-escapes %, CR, LF and bytes < 0x20; decode back to UTF-8 text.
decode() { printf '%b' "${1//%/\\x}"; }
oneline() { local s="${1//$'\r'/}"; printf '%s' "${s//$'\n'/ | }"; }

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
  oathtool --totp --base32 --now="@$(($(date +%s) + 30 * (n - 2)))" "${KYSO_PINENTRY_TOTP:-}"
}

answer() {
  case "$prompt" in
    *OTP*) otp ;;
    "Mật khẩu:" | "Password:") printf '%s' "${KYSO_PINENTRY_PASSWORD:-}" ;;
    *) printf '%s' "${KYSO_PINENTRY_PIN:-}" ;;
  esac
}

# libassuan's limit: a line of more than 1000 bytes (escaped, without its line end) makes a real
# pinentry (pinentry-tty 1.2.1 included) give up and exit; this one does the same.
too_long() { local LC_ALL=C; ((${#1} > 1000)); }

title="" desc="" prompt=""
echo "OK Pleased to meet you"
while IFS= read -r line; do
  line="${line%$'\r'}"
  if too_long "$line"; then
    printf 'TOOLONG at=%s bytes=%s\n' "$(date +%s.%N)" "$(LC_ALL=C; echo "${#line}")" >>"$log"
    exit 1
  fi
  cmd="${line%% *}"
  arg=""
  [[ "$line" == *" "* ]] && arg="${line#* }"
  case "$cmd" in
    SETTITLE) title="$(decode "$arg")"; echo OK ;;
    SETDESC) desc="$(decode "$arg")"; echo OK ;;
    SETPROMPT) prompt="$(decode "$arg")"; echo OK ;;
    OPTION | SETOK | SETCANCEL | SETNOTOK | SETKEYINFO | SETREPEAT | SETERROR | SETTIMEOUT | RESET)
      echo OK ;;
    GETPIN | CONFIRM)
      # Everything is prepared first, so that at= (no fork: bash's clock) is the moment of the
      # answer and not of the forks that write the log line.
      line="$cmd action=$action title=$(oneline "$title") prompt=$(oneline "$prompt") desc=$(oneline "$desc")"
      reply=OK
      [[ "$cmd" == GETPIN && "$action" != cancel && "$action" != hang ]] && reply="D $(answer)"$'\n'OK
      now="${EPOCHREALTIME/,/.}"
      printf '%s\n' "${line/ action=/ at=$now action=}" >>"$log"
      case "$action" in
        cancel) echo "$CANCELLED" ;;
        hang) exec sleep 600 ;;
        *) printf '%s\n' "$reply" ;;
      esac ;;
    GETINFO)
      case "$arg" in
        pid) printf 'D %s\nOK\n' "$$" ;;
        version) printf 'D 1.2.1\nOK\n' ;;
        flavor) printf 'D kyso-scripted\nOK\n' ;;
        *) echo OK ;;
      esac ;;
    BYE) echo "OK closing connection" 2>/dev/null; exit 0 ;;  # the agent may not wait for it
    *) echo "ERR 536871187 Unknown IPC command <User defined source 1>" ;;
  esac
done
