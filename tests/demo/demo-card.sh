#!/usr/bin/env bash
# ./run demo --card: the demo on emulated smart cards through OpenSC instead of SoftHSM2. pcscd
# with the vsmartcard-vpcd reader holds two PIV cards played by tests/card/kyso-piv-card.py: the
# homeroom teacher's card (RSA-2048 in slot 9A, EC P-256 in slot 9C) and the school's card (the
# seal's RSA-2048 key in 9A, the principal's in 9C, PIN always), with certificates from the demo
# PKI. OpenSC's opensc-pkcs11.so drives them, as it drives an ePass2003 on a teacher's PC.
set -euo pipefail
BUILD="${1:?usage: demo-card.sh BUILD_DIR}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DEMO="$BUILD/demo"
CARDS="$DEMO/card"
KYSO="$BUILD/cli/kyso"
say() { printf '\n\033[1;32m==>\033[0m %s\n' "$*"; }

# Whatever an earlier ./run demo left running (its pcscd holds the machine's one PC/SC socket).
[[ -f "$DEMO/pids" ]] && kill $(cat "$DEMO/pids") 2>/dev/null || true
rm -f "$DEMO/pids"
[[ -d "$CARDS" ]] && "$ROOT/tests/card/card-fixture.sh" stop "$CARDS" "$DEMO"

say "Hạ tầng khóa công khai demo / the demo PKI"
"$ROOT/tests/pki/make-demo-token.sh" "$DEMO"

say "pcscd, đầu đọc thẻ ảo và hai thẻ PIV / pcscd, the virtual reader and two PIV cards"
"$ROOT/tests/card/card-fixture.sh" start "$CARDS" "$DEMO"
if [[ -f "$CARDS/skip.txt" ]]; then
  echo "  the card demo cannot run here: $(cat "$CARDS/skip.txt")" >&2
  exit 1
fi
cat "$CARDS/pcscd.pid" > "$DEMO/card.pids"
for card in card-a card-b; do
  mkdir -p "$DEMO/card-run"
  rm -rf "$DEMO/card-run/$card"
  cp -r "$CARDS/$card" "$DEMO/card-run/$card"
  port=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['readers'][sys.argv[2]])" \
    "$CARDS/card.json" "$card")
  "$ROOT/tests/card/kyso-piv-card.py" --state "$DEMO/card-run/$card/state.json" --port "$port" \
    --log "$DEMO/card-run/$card.log" >/dev/null 2>&1 &
  echo $! >> "$DEMO/card.pids"
done
export OPENSC_CONF="$CARDS/opensc.conf"
OPENSC=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
K=("$KYSO" --no-system-modules --module "$OPENSC")
for _ in $(seq 1 150); do
  (("$("${K[@]}" tokens --json | grep -c '"label"' || true)" >= 2)) && break
  sleep 0.1
done

say "kyso tokens"
"${K[@]}" tokens

say "kyso credentials"
"${K[@]}" credentials

say "Ký và kiểm tra một giá trị băm bằng mỗi khóa trên thẻ / one hash per card key, verified by OpenSSL"
hash=$(printf 'Học bạ số - Lớp 12A1 - Nguyễn Văn An' | openssl dgst -sha256 -hex | awk '{print $NF}')
printf '%s' "$hash" | xxd -r -p > "$DEMO/hash.bin"
for name in card-teacher card-teacher-ec card-principal card-seal; do
  cert="$CARDS/pki/$name.crt"
  id=$(openssl x509 -in "$cert" -outform DER | openssl dgst -sha256 -hex | awk '{print $NF}')
  openssl x509 -in "$cert" -pubkey -noout > "$DEMO/$name.pub"
  if [[ $name == *-ec ]]; then
    alg=ecdsa-sha256 opts=()
  else
    alg=rsa-pss-sha256 opts=(-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest)
  fi
  "${K[@]}" sign-hash --credential "$id" --alg "$alg" --hash "$hash" --pin-file "$DEMO/pin.txt" \
    --json > "$DEMO/$name.sig.json"
  sed -n 's/.*"signature": "\(.*\)".*/\1/p' "$DEMO/$name.sig.json" | base64 -d > "$DEMO/$name.sig"
  if openssl pkeyutl -verify -pubin -inkey "$DEMO/$name.pub" -in "$DEMO/hash.bin" \
       -sigfile "$DEMO/$name.sig" -pkeyopt digest:sha256 "${opts[@]}" >/dev/null; then
    printf '  %-16s %-15s %s  ✔ OpenSSL\n' "$name" "$alg" \
      "$(openssl x509 -in "$cert" -noout -subject -nameopt utf8,sep_comma_plus_space | sed 's/.*CN=//')"
  else
    echo "  $name: signature did NOT verify" >&2
    exit 1
  fi
done

# The page signs with the credentials the manifest names teacher, principal and seal.
/usr/bin/python3 - "$DEMO/manifest.json" "$CARDS/card.json" "$CARDS/manifest.json" <<'PY'
import json, sys, subprocess
demo, card = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
cn = {c["name"]: c["cn"] for c in demo["credentials"]}
demo["credentials"] = [
    {"name": role, "role": role, "cn": cn[role], "cert": c["cert"], "cert_der": c["cert_der"]}
    for role, c in ((c["role"], c) for c in card["credentials"] if c["name"] != "card-teacher-ec")]
json.dump(demo, open(sys.argv[3], "w"), ensure_ascii=False, indent=1)
PY

if [[ -x "$BUILD/agent/kyso-agent" ]]; then
  KYSO_DEMO_MODULE="$OPENSC" KYSO_DEMO_MANIFEST="$CARDS/manifest.json" \
    "$ROOT/tests/demo/demo-agent.sh" "$BUILD"
  say "Thẻ ảo / the virtual cards"
  echo "  what each card was asked: $DEMO/card-run/card-a.log, $DEMO/card-run/card-b.log"
fi
cat "$DEMO/card.pids" >> "$DEMO/pids"
