#!/usr/bin/env bash
# card-fixture.sh start|stop CARDDIR PKIDIR
#
# The smart-card stack for the OpenSC tests and `./run demo --card`: pcscd with vsmartcard-vpcd
# reader on free loopback ports, and the material for two PIV cards that
# tests/card/kyso-piv-card.py plays ("card-a": the teacher's RSA-2048 key in slot 9A and EC P-256
# key in slot 9C; "card-b": the school seal's RSA-2048 key in 9A and the principal's RSA-2048 key
# in 9C), with keys made here and certificates issued by the test PKI of make-demo-token.sh
# (PKIDIR). Slot 9C keys want the PIN before every signature (CKA_ALWAYS_AUTHENTICATE). The vpcd
# driver serves one reader entry (two card slots) per pcscd: two cards at most. Each test starts the cards it needs from a fresh copy of their
# state (tests/card/card.hpp), so that a test locking a PIN leaves the next one a fresh card.
#
# pcsc-lite has one socket per machine (/run/pcscd/pcscd.comm; PCSCLITE_CSOCK_NAME is ignored):
# one pcscd per machine, so this fixture holds a machine-wide lock from start to stop (other
# checkouts' runs wait for it) and ctest runs the card tests one at a time (RESOURCE_LOCK pcscd).
# Where pcscd cannot run (not installed, no vpcd driver, a system pcscd already running, no
# right to its run directory), CARDDIR/skip.txt says why and the tests skip with that message.
#
# Output: CARDDIR/card.json describes the readers, cards, credentials and PINs.
set -euo pipefail

readonly PIN=123456 PUK=12345678
readonly LOCK=/tmp/kyso-pcscd.lock
readonly VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
readonly OPENSC=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so

say() { printf 'card-fixture: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

(($# == 3)) || die "usage: $0 start|stop CARDDIR PKIDIR"
action=$1
DIR="$(realpath -m -- "$2")"
PKIDIR="$(realpath -m -- "$3")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

stop() {
  if [[ -f "$DIR/pcscd.pid" ]]; then
    local pid
    pid=$(cat "$DIR/pcscd.pid")
    # Only the pcscd this fixture started (its command line names our reader directory).
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$DIR/readers"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/pcscd.pid"
  fi
}

if [[ $action == stop ]]; then
  stop
  exit 0
fi
[[ $action == start ]] || die "unknown action $action"

[[ "$DIR" =~ ^/[A-Za-z0-9._/+@=:-]+$ ]] || die "CARDDIR must be a plain path"
[[ -f "$PKIDIR/pki/openssl.cnf" ]] || die "no test PKI in $PKIDIR (run make-demo-token.sh first)"
if [[ -d "$DIR" ]]; then
  stop
  [[ -f "$DIR/card.json" || -f "$DIR/skip.txt" || -z "$(ls -A "$DIR")" ]] ||
    die "refusing to delete $DIR: not made by this script"
fi
rm -rf "$DIR"
mkdir -p "$DIR/readers" "$DIR/pki"

skip() {
  say "skipping the OpenSC card tests: $*"
  printf '%s\n' "$*" >"$DIR/skip.txt"
  exit 0
}

command -v pcscd >/dev/null || skip "pcscd is not installed (apt install pcscd)"
[[ -f $VPCD_DRIVER ]] || skip "the vpcd reader driver is missing (apt install vsmartcard-vpcd)"
[[ -f $OPENSC ]] || skip "OpenSC's PKCS#11 module is missing (apt install opensc-pkcs11)"
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
  skip "python3-cryptography is missing (apt install python3-cryptography)"

# --- card material: keys here, certificates from the test PKI's issuing CA -------------------
PKI="$PKIDIR/pki"
LOG="$DIR/setup.log"
q() { "$@" >>"$LOG" 2>&1 || { cat "$LOG" >&2; die "failed: $*"; }; }
subj() { printf '/%s' "${1//, //}"; }
readonly TEACHER_DN="C=VN, ST=HÀ NỘI, L=Quận Ba Đình, O=Trường THPT Chu Văn An, title=Giáo viên chủ nhiệm"
# name|card|slot|key|role|subject
CREDS=(
  "card-teacher|card-a|9a|rsa2048|teacher|$TEACHER_DN, UID=CCCD:001185012345, CN=Nguyễn Thị Ánh"
  "card-teacher-ec|card-a|9c|ec-p256|teacher|C=VN, ST=HỒ CHÍ MINH, O=Trường Tiểu học Lê Quý Đôn, title=Giáo viên bộ môn, UID=CMND:025123456, UID=MST:0301234567, CN=Lê Hoàng Phúc"
  "card-seal|card-b|9a|rsa2048|seal|C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An, UID=MNS:1047665, CN=Trường THPT Chu Văn An"
  "card-principal|card-b|9c|rsa2048|principal|C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An, title=Hiệu trưởng, UID=CCCD:001080054321, CN=Trần Văn Bình"
)
creds_json=""
for c in "${CREDS[@]}"; do
  IFS='|' read -r name card slot key role dn <<<"$c"
  mkdir -p "$DIR/$card"
  case "$key" in
    rsa2048) q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$DIR/$card/$slot.key" ;;
    ec-p256) q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/$card/$slot.key" ;;
  esac
  q openssl req -new -config "$PKI/openssl.cnf" -utf8 -sha256 -key "$DIR/$card/$slot.key" \
    -subj "$(subj "$dn")" -out "$DIR/pki/$name.csr"
  # The issuing CA's database is shared with the SoftHSM tests' OCSP responders: hold its lock.
  q flock "$PKI/index.txt" openssl ca -batch -config "$PKI/openssl.cnf" -name sub_ca -utf8 \
    -preserveDN -notext -extensions ee_sign -days 730 -in "$DIR/pki/$name.csr" \
    -out "$DIR/pki/$name.crt"
  q openssl x509 -in "$DIR/pki/$name.crt" -outform DER -out "$DIR/$card/$slot.der"
  creds_json+="${creds_json:+,
}    {\"name\":\"$name\",\"card\":\"$card\",\"slot\":\"$slot\",\"key\":\"$key\",\"role\":\"$role\",\"cert\":\"$DIR/pki/$name.crt\",\"cert_der\":\"$DIR/$card/$slot.der\"}"
done
for card in card-a card-b; do
  slots=""
  for f in "$DIR/$card"/*.der; do
    s=$(basename "$f" .der)
    slots+="${slots:+, }\"$s\": {\"key\": \"$s.key\", \"cert\": \"$s.der\"}"
  done
  cat >"$DIR/$card/state.json" <<EOF
{"pin": "$PIN", "puk": "$PUK", "pin_tries": 3, "puk_tries": 3, "max_tries": 3,
 "guid": "$(openssl rand -hex 16)", "slots": {$slots}}
EOF
done

# OpenSC reads this instead of /etc/opensc/opensc.conf (OPENSC_CONF): no file cache in $HOME,
# so a card re-provisioned by a test is never answered from another run's cache; and PIV's PUK
# unblocks the PIN as `kyso provision unblock-pin` asks (C_Login(CKU_SO) with the PUK, then
# C_InitPIN), which OpenSC refuses for PIV unless told so (a known quirk, see README).
cat >"$DIR/opensc.conf" <<EOF
app default {
  framework pkcs15 {
    use_file_caching = no;
  }
  pkcs11 {
    user_pin_unblock_style = init_pin_in_so_session;
  }
}
EOF

# --- pcscd, one per machine --------------------------------------------------------------------
exec 9>>"$LOCK"
if ! flock -w 600 9; then
  skip "another checkout's pcscd kept $LOCK for 10 minutes"
fi
if pid=$(pgrep -x pcscd); then
  skip "a pcscd not started by these tests is running (pid $pid); the card tests need their own"
fi
rm -f /run/pcscd/pcscd.comm  # a killed pcscd's socket would look ready before ours is
# vpcd gives its reader two slots, on ports P and P+1: find two free neighbours.
PORT_A=$(/usr/bin/python3 -c '
import socket
for _ in range(100):
    a, b = socket.socket(), socket.socket()
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", a.getsockname()[1] + 1))
        print(a.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        a.close()
        b.close()
')
[[ -n $PORT_A ]] || skip "no two neighbouring free loopback ports"
PORT_B=$((PORT_A + 1))
cat >"$DIR/readers/kyso-vpcd" <<EOF
FRIENDLYNAME "Kyso Card Reader"
DEVICENAME   /dev/null:$PORT_A
LIBPATH      $VPCD_DRIVER
CHANNELID    $PORT_A
EOF
# pcscd inherits fd 9 and so holds the machine-wide lock until it exits.
setsid pcscd --foreground --config "$DIR/readers" >"$DIR/pcscd.log" 2>&1 &
echo $! >"$DIR/pcscd.pid"
exec 9>&-
for _ in $(seq 100); do
  [[ -S /run/pcscd/pcscd.comm ]] && break
  if ! kill -0 "$(cat "$DIR/pcscd.pid")" 2>/dev/null; then
    rm -f "$DIR/pcscd.pid"
    skip "pcscd could not start here: $(tail -n 3 "$DIR/pcscd.log" | tr '\n' ' ')"
  fi
  sleep 0.1
done
[[ -S /run/pcscd/pcscd.comm ]] || { stop; skip "pcscd started but made no socket in 10 s"; }

cat >"$DIR/card.json" <<EOF
{
  "opensc_module": "$OPENSC",
  "opensc_conf": "$DIR/opensc.conf",
  "emulator": "$HERE/kyso-piv-card.py",
  "user_pin": "$PIN",
  "puk": "$PUK",
  "max_tries": 3,
  "readers": {"card-a": $PORT_A, "card-b": $PORT_B},
  "cards": {"card-a": "$DIR/card-a", "card-b": "$DIR/card-b"},
  "credentials": [
$creds_json
  ]
}
EOF
say "pcscd $(cat "$DIR/pcscd.pid") with its card reader on ports $PORT_A and $PORT_B; cards in $DIR"
