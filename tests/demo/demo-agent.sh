#!/usr/bin/env bash
# Second half of ./run demo: the agent and the demo transcript page on loopback, and the class
# signed end to end in headless chromium. Sourced environment: SOFTHSM2_CONF (the demo token);
# with --card (demo-card.sh): KYSO_DEMO_MODULE (OpenSC) and KYSO_DEMO_MANIFEST (the cards').
#
# Demo only: the approvals are given by a scripted pinentry (tests/agent/scripted-pinentry.sh) so
# the demo runs without a person; each dialog it "saw" is logged. A real install uses GnuPG's
# pinentry, where the user reads the dialog and types the PIN.
set -euo pipefail
BUILD="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEMO="$BUILD/demo"
PAGE_PORT="${KYSO_DEMO_PORT:-19600}"
MODULE="${KYSO_DEMO_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
MANIFEST="${KYSO_DEMO_MANIFEST:-$DEMO/manifest.json}"
say() { printf '\n\033[1;32m==>\033[0m %s\n' "$*"; }

# Whatever an earlier ./run demo left running.
[[ -f "$DEMO/pids" ]] && kill $(cat "$DEMO/pids") 2>/dev/null || true
rm -f "$DEMO/pids"

pin=$(cat "$DEMO/pin.txt")
cat > "$DEMO/pinentry" <<PIN
#!/bin/sh
export KYSO_PINENTRY_LOG='$DEMO/dialogs.log' KYSO_PINENTRY_PIN='$pin'
exec '$ROOT/tests/agent/scripted-pinentry.sh' "\$@"
PIN
chmod 700 "$DEMO/pinentry"
: > "$DEMO/dialogs.log"

say "Khởi động kyso-agent / starting kyso-agent"
rm -rf "$DEMO/state"
"$BUILD/agent/kyso-agent" --port 0 --module "$MODULE" --no-system-modules \
  --pinentry "$DEMO/pinentry" --state-dir "$DEMO/state" --log-level info > "$DEMO/agent.log" 2>&1 &
agent_pid=$!
echo "$agent_pid" >> "$DEMO/pids"
port=""
for _ in $(seq 1 100); do
  port=$(grep -oE '127\.0\.0\.1:[0-9]+' "$DEMO/agent.log" | head -1 | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { cat "$DEMO/agent.log"; echo "the agent did not start" >&2; exit 1; }
echo "  ws://127.0.0.1:$port/  (status: curl http://127.0.0.1:$port/)"

say "Trang học bạ demo / the demo transcript page"
(cd "$ROOT/sdk/js" && npm run --silent build >/dev/null)
node "$ROOT/sdk/js/demo/serve.mjs" "$PAGE_PORT" > "$DEMO/page.log" 2>&1 &
echo $! >> "$DEMO/pids"
for _ in $(seq 1 50); do grep -q http "$DEMO/page.log" && break; sleep 0.1; done
url=$(grep -oE 'http://[0-9.:]+/' "$DEMO/page.log" | head -1)
echo "  $url"

say "Ký cả lớp 12A1 trong Chromium / signing class 12A1 in headless chromium"
rm -rf "$DEMO/signed"
node "$ROOT/sdk/js/demo/drive.mjs" "$url" "$port" "$MANIFEST" "$DEMO/demo.png" "$DEMO/signed"

say "Kiểm tra tệp đã ký bằng công cụ độc lập / signed files checked by xmlsec1, pdfsig, qpdf"
root_pem=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$DEMO/manifest.json','utf8')).pki.root)")
sub_pem=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$DEMO/manifest.json','utf8')).pki.sub)")
node "$ROOT/sdk/js/demo/verify-files.mjs" "$DEMO/signed" "$root_pem" "$sub_pem"

say "Nhật ký kiểm toán / audit log"
"$BUILD/cli/kyso" audit verify --db "$DEMO/state/audit.db" || true

say "Xem kết quả / where to look"
cat <<MSG
  Trang demo (mở trong trình duyệt):  $url?ports=$port
  Ảnh chụp trang sau khi ký:           $DEMO/demo.png
  Tệp học bạ đã ký (XML, PDF):         $DEMO/signed/  (vd. $DEMO/signed/hoc-ba-12A1-01.pdf)
  Hộp thoại phê duyệt của Kyso:        $DEMO/dialogs.log
  Nhật ký của agent:                   $DEMO/agent.log
  Nhật ký kiểm toán (SQLite):          $DEMO/state/audit.db
  Agent và trang demo vẫn chạy; dừng bằng: kill \$(cat $DEMO/pids)
MSG
