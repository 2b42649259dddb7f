#!/usr/bin/env bash
# A pinentry that answers like a user would, for the agent's tests and benchmark. Speaks the
# Assuan protocol on stdin/stdout exactly as GnuPG's pinentry programs do.
#   KYSO_PINENTRY_ACTION  ok (default): press OK / type the PIN; cancel: press Cancel;
#                         hang: never answer (the agent's timeout or cancel must end it)
#   KYSO_PINENTRY_PIN     what the user types at GETPIN
#   KYSO_PINENTRY_LOG     file that gets one line per dialog: "<CONFIRM|GETPIN> <escaped SETDESC>"
set -u
action="${KYSO_PINENTRY_ACTION:-ok}"
log="${KYSO_PINENTRY_LOG:-/dev/null}"
desc="" title="" prompt=""
echo "OK Pleased to meet you"
while IFS= read -r line; do
  cmd="${line%% *}"
  arg=""
  [[ "$line" == *" "* ]] && arg="${line#* }"
  case "$cmd" in
    SETDESC) desc="$arg"; echo OK ;;
    SETTITLE) title="$arg"; echo OK ;;
    SETPROMPT) prompt="$arg"; echo OK ;;
    OPTION | SETOK | SETCANCEL | SETNOTOK | SETKEYINFO | SETREPEAT) echo OK ;;
    GETPIN | CONFIRM)
      printf '%s title=%s prompt=%s desc=%s\n' "$cmd" "$title" "$prompt" "$desc" >>"$log"
      case "$action" in
        cancel) echo "ERR 83886179 Operation cancelled <Pinentry>" ;;
        hang) exec sleep 600 ;;
        *)
          if [[ "$cmd" == GETPIN ]]; then
            printf 'D %s\nOK\n' "${KYSO_PINENTRY_PIN:-}"
          else
            echo OK
          fi ;;
      esac ;;
    BYE) echo "OK closing connection" 2>/dev/null; exit 0 ;;
    *) echo "ERR 536871187 Unknown IPC command <User defined source 1>" ;;
  esac
done
