#!/usr/bin/env bash
# A scripted pinentry for the SDK's browser test: speaks the Assuan protocol exactly as GnuPG's
# pinentry programs do, so the agent drives it as it would drive a real dialog, and acts like a
# user who reads the dialog and confirms.
#   KYSO_PINENTRY_PIN     PIN typed at GETPIN (default 123456, the demo token's)
#   KYSO_PINENTRY_ACTION  confirm (default) | cancel: press OK or Cancel
#   KYSO_PINENTRY_ACTION_FILE  if set and readable, its first word overrides the action (lets a
#                         test change the user's answer between dialogs of one running agent)
#   KYSO_PINENTRY_LOG     file that receives each dialog's title, description and prompt
set -u
pin="${KYSO_PINENTRY_PIN:-123456}"
action="${KYSO_PINENTRY_ACTION:-confirm}"
if [[ -n "${KYSO_PINENTRY_ACTION_FILE:-}" && -r "$KYSO_PINENTRY_ACTION_FILE" ]]; then
  read -r action _ <"$KYSO_PINENTRY_ACTION_FILE" || true
fi
log="${KYSO_PINENTRY_LOG:-/dev/null}"
# GPG_ERR_CANCELED (99) from GPG_ERR_SOURCE_PINENTRY (5): what a real pinentry answers on Cancel.
readonly CANCELLED="ERR 83886179 Operation cancelled <Pinentry>"

# Assuan percent-escapes %, CR, LF and bytes < 0x20; decode back to UTF-8 text.
decode() { printf '%b' "${1//%/\\x}"; }

dialog() {
  {
    printf '=== %s (%s)\n' "$1" "$action"
    printf 'title: %s\n' "$title"
    printf 'desc: %s\n' "$desc"
    printf 'prompt: %s\n' "$prompt"
  } >>"$log"
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
    CONFIRM)
      dialog CONFIRM
      if [[ "$action" == cancel ]]; then echo "$CANCELLED"; else echo OK; fi ;;
    GETPIN)
      dialog GETPIN
      if [[ "$action" == cancel ]]; then echo "$CANCELLED"; else printf 'D %s\nOK\n' "$pin"; fi ;;
    GETINFO)
      case "$arg" in
        pid) printf 'D %s\nOK\n' "$$" ;;
        version) printf 'D 1.2.1\nOK\n' ;;
        flavor) printf 'D kyso-scripted\nOK\n' ;;
        *) echo OK ;;
      esac ;;
    BYE) echo "OK closing connection" 2>/dev/null; exit 0 ;;  # the agent may not wait for it
    *) echo OK ;;  # OPTION, SETOK, SETCANCEL, SETKEYINFO, SETTIMEOUT, SETERROR, RESET, ...
  esac
done
