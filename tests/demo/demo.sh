#!/usr/bin/env bash
# ./run demo: a demo token with teacher, principal and seal certificates from a demo PKI, then
# the class signed end to end. Everything stays on this machine, under BUILD/demo.
set -euo pipefail
BUILD="${1:?usage: demo.sh BUILD_DIR [--card]}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ "${2:-}" == --card ]]; then exec "$ROOT/tests/demo/demo-card.sh" "$BUILD"; fi
DEMO="$BUILD/demo"
KYSO="$BUILD/cli/kyso"
MODULE=/usr/lib/softhsm/libsofthsm2.so

say() { printf '\n\033[1;32m==>\033[0m %s\n' "$*"; }

say "Tạo token demo (SoftHSM2) và hạ tầng khóa công khai demo / making the demo token and PKI"
"$ROOT/tests/pki/make-demo-token.sh" "$DEMO"
export SOFTHSM2_CONF="$DEMO/softhsm2.conf"
K=("$KYSO" --no-system-modules --module "$MODULE")

say "kyso tokens"
"${K[@]}" tokens

say "kyso credentials"
"${K[@]}" credentials

say "Ký và kiểm tra một giá trị băm cho mỗi vai trò / signing and verifying one hash per role"
hash=$(printf 'Học bạ số - Lớp 12A1 - Nguyễn Văn An' | openssl dgst -sha256 -hex | awk '{print $NF}')
printf '%s' "$hash" | xxd -r -p > "$DEMO/hash.bin"
for role in teacher principal seal; do
  alg=rsa-pss-sha256
  "${K[@]}" sign-hash --role "$role" --alg "$alg" --hash "$hash" --pin-file "$DEMO/pin.txt" --json > "$DEMO/$role.sig.json"
  sed -n 's/.*"signature": "\(.*\)".*/\1/p' "$DEMO/$role.sig.json" | base64 -d > "$DEMO/$role.sig"
  sed -n 's/.*"certificate": "\(.*\)".*/\1/p' "$DEMO/$role.sig.json" | base64 -d |
    openssl x509 -inform DER -out "$DEMO/$role.signer.crt"
  cert="$DEMO/$role.signer.crt"
  openssl x509 -in "$cert" -pubkey -noout > "$DEMO/$role.pub"
  if openssl pkeyutl -verify -pubin -inkey "$DEMO/$role.pub" -in "$DEMO/hash.bin" -sigfile "$DEMO/$role.sig" \
       -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest >/dev/null; then
    printf '  %-10s %s  ✔ OpenSSL: chữ ký hợp lệ / signature verified\n' "$role" "$(openssl x509 -in "$cert" -noout -subject -nameopt utf8,sep_comma_plus_space | sed 's/^subject=//')"
  else
    echo "  $role: signature did NOT verify" >&2
    exit 1
  fi
done

if [[ -x "$ROOT/tests/demo/demo-agent.sh" && -x "$BUILD/agent/kyso-agent" ]]; then
  exec "$ROOT/tests/demo/demo-agent.sh" "$BUILD"
fi

say "Xong / done. Token: $DEMO (SOFTHSM2_CONF=$SOFTHSM2_CONF, PIN in $DEMO/pin.txt)"
