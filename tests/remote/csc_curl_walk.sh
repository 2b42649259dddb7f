#!/usr/bin/env bash
# An independent CSC client: walks the whole CSC v2 flow against kyso-appliance with curl,
# oathtool (TOTP) and openssl only, using nothing but the documented API
# (docs/remote-signing.md). Every signature is verified by `openssl pkeyutl -verify` against the
# certificate the appliance returned.
#
#   csc_curl_walk.sh KYSO_APPLIANCE      (KYSO_TEST_DIR: a dir made by make-demo-token.sh)
set -euo pipefail

APPLIANCE="${1:?usage: $0 KYSO_APPLIANCE}"
FIXTURE="${KYSO_TEST_DIR:?KYSO_TEST_DIR not set (run through ctest)}"
for tool in curl oathtool openssl base64; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

say() { printf 'csc-curl: %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

W="$(mktemp -d /tmp/kyso-csc-curl.XXXXXX)"
pid=""
cleanup() {
  [[ -z "$pid" ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$W"
}
trap cleanup EXIT

# A private copy of the demo token: parallel tests never share SoftHSM state.
mkdir -p "$W/tokens"
cp -a "$FIXTURE/tokens/." "$W/tokens/"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" \
  >"$W/softhsm2.conf"
export SOFTHSM2_CONF="$W/softhsm2.conf"

# The appliance's TLS certificate, issued by a throw-away CA that curl is told to trust.
q() { "$@" >"$W/log" 2>&1 || { cat "$W/log" >&2; die "$*"; }; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=Kyso test TLS CA" -keyout "$W/ca.key" -out "$W/ca.crt"
q openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$W/tls.key" -out "$W/tls.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$W/san.ext"
q openssl x509 -req -in "$W/tls.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/san.ext" -out "$W/tls.crt"

cred_id() { openssl dgst -sha256 -r "$FIXTURE/certs/$1.der" | cut -d' ' -f1; }
PRINCIPAL_ID="$(cred_id principal)"
TEACHER_ID="$(cred_id teacher)"
PIN="$(cat "$FIXTURE/pin.txt")"
PASSWORD='mật-khẩu đúng 2026'
TOTP_SECRET=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
HASH="$(printf '%s' "$PASSWORD" | "$APPLIANCE" hash-password --cost 10)"
HASH_T="$(printf 'teacher-pw' | "$APPLIANCE" hash-password --cost 10)"

# The appliance's TOML profile (docs/configuration.md): the principal's credential named by its
# certificate file, the teacher's by the certificate's SHA-256.
(umask 077 && printf '%s\n' "$TOTP_SECRET" >"$W/principal.totp")
cat >"$W/appliance.toml" <<EOF
[server]
name = "Kyso test appliance"
listen = "127.0.0.1:0"
state_db = "state.db"

[tls]
cert = "tls.crt"
key = "tls.key"

[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "Kyso Demo"

[[credentials]]
id = "principal"
certificate = "$FIXTURE/certs/principal.der"

[[credentials]]
id = "teacher"
sha256 = "$TEACHER_ID"

[[users]]
name = "principal"
password_hash = "$HASH"
totp_secret_file = "principal.totp"
credentials = ["principal"]

[[users]]
name = "teacher"
password_hash = "$HASH_T"
second_factor = "none"
credentials = ["teacher"]

[limits]
multisign = 2
totp_window = 2
EOF
"$APPLIANCE" check-config --config "$W/appliance.toml" >"$W/log" 2>&1 || { cat "$W/log" >&2; die "check-config"; }

"$APPLIANCE" --config "$W/appliance.toml" --port-file "$W/port" 2>"$W/appliance.log" &
pid=$!
for _ in $(seq 100); do
  [[ -s "$W/port" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$W/appliance.log" >&2; die "appliance did not start"; }
  sleep 0.1
done
[[ -s "$W/port" ]] || die "no port file"
BASE="https://127.0.0.1:$(cat "$W/port")/csc/v2"
say "appliance at $BASE"

# csc METHOD BODY [curl args...]: POST, prints the body; the HTTP status goes to $W/status
# (callers use $(csc ...), a subshell).
csc() {
  local method="$1" body="$2"
  shift 2
  curl -sS --cacert "$W/ca.crt" -o "$W/out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' --data-binary "$body" "$@" "$BASE/$method" >"$W/status"
  cat "$W/out"
}
field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p'; }
expect() {
  local status
  status="$(cat "$W/status")"
  [[ "$status" == "$1" ]] || die "$2: HTTP $status (expected $1): $(cat "$W/out")"
}

say "1. info"
out="$(csc info '{}')"
expect 200 info
[[ "$out" == *'"specs":"2.'* && "$out" == *'"credentials/authorize"'* ]] || die "info: $out"

say "2. auth/login (HTTP Basic); a wrong password is refused"
csc auth/login '{}' -u "principal:wrong" >/dev/null
expect 401 "login with a wrong password"
out="$(csc auth/login '{"rememberMe":false}' -u "principal:$PASSWORD")"
expect 200 login
TOKEN="$(field access_token <<<"$out")"
[[ -n "$TOKEN" ]] || die "no access_token: $out"
AUTH=(-H "Authorization: Bearer $TOKEN")

say "3. credentials/list shows only the principal's credential"
out="$(csc credentials/list '{}' "${AUTH[@]}")"
expect 200 credentials/list
[[ "$out" == *"$PRINCIPAL_ID"* && "$out" != *"$TEACHER_ID"* ]] || die "credentials/list: $out"
csc credentials/list '{}' -H "Authorization: Bearer not-a-token" >/dev/null
expect 401 "credentials/list with a made-up token"

say "4. credentials/info: chain, SCAL 2, multisign, PIN + OTP"
out="$(csc credentials/info "{\"credentialID\":\"$PRINCIPAL_ID\",\"certificates\":\"chain\",\"certInfo\":true,\"authInfo\":true}" "${AUTH[@]}")"
expect 200 credentials/info
[[ "$out" == *'"SCAL":"2"'* && "$out" == *'"multisign":2'* && "$out" == *'"PIN AND OTP"'* ]] ||
  die "credentials/info: $out"
# The leaf certificate: the first of cert.certificates.
leaf="$(sed -n 's/.*"certificates":\["\([^"]*\)".*/\1/p' <<<"$out")"
printf '%s' "$leaf" | base64 -d >"$W/leaf.der"
cmp -s "$W/leaf.der" "$FIXTURE/certs/principal.der" || die "returned certificate differs"
q openssl x509 -inform DER -in "$W/leaf.der" -pubkey -noout -out "$W/pub.pem"

say "5. credentials/authorize the whole batch (4 hashes, numSignatures 4) with PIN + TOTP (oathtool)"
for i in 1 2 3 4 5; do
  printf 'Học bạ số %d: Trần Văn Bình ký' "$i" >"$W/doc$i"
  openssl dgst -sha256 -binary "$W/doc$i" >"$W/h$i.bin"
  declare "H$i=$(base64 -w0 "$W/h$i.bin")"
done
SHA256=2.16.840.1.101.3.4.2.1
BATCH="[\"$H1\",\"$H2\",\"$H3\",\"$H4\"]"
otp="$(oathtool --totp --base32 "$TOTP_SECRET")"
bad_otp=$(( (10#$otp + 1) % 1000000 ))
bad_otp="$(printf '%06d' "$bad_otp")"
csc credentials/authorize "{\"credentialID\":\"$PRINCIPAL_ID\",\"numSignatures\":4,\"hashes\":$BATCH,\"hashAlgorithmOID\":\"$SHA256\",\"authData\":[{\"id\":\"PIN\",\"value\":\"$PIN\"},{\"id\":\"OTP\",\"value\":\"$bad_otp\"}]}" "${AUTH[@]}" >/dev/null
expect 400 "authorize with a wrong OTP"
grep -q invalid_otp "$W/out" || die "wrong OTP: $(cat "$W/out")"
csc credentials/authorize "{\"credentialID\":\"$PRINCIPAL_ID\",\"numSignatures\":2,\"hashes\":$BATCH,\"hashAlgorithmOID\":\"$SHA256\",\"authData\":[{\"id\":\"PIN\",\"value\":\"$PIN\"},{\"id\":\"OTP\",\"value\":\"$otp\"}]}" "${AUTH[@]}" >/dev/null
expect 400 "authorize with numSignatures below the number of hashes"
out="$(csc credentials/authorize "{\"credentialID\":\"$PRINCIPAL_ID\",\"numSignatures\":4,\"hashes\":$BATCH,\"hashAlgorithmOID\":\"$SHA256\",\"authData\":[{\"id\":\"PIN\",\"value\":\"$PIN\"},{\"id\":\"OTP\",\"value\":\"$otp\"}]}" "${AUTH[@]}")"
expect 200 credentials/authorize
SAD="$(field SAD <<<"$out")"
[[ -n "$SAD" ]] || die "no SAD: $out"

say "6. signatures/signHash (2 per request: multisign), signatures in order, verified by openssl"
RSA_SHA256=1.2.840.113549.1.1.11
out="$(csc signatures/signHash "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD\",\"hashes\":[\"$H1\",\"$H2\"],\"hashAlgorithmOID\":\"$SHA256\",\"signAlgo\":\"$RSA_SHA256\"}" "${AUTH[@]}")"
expect 200 signHash
grep -o '"signatures":\[[^]]*\]' <<<"$out" | grep -o '"[A-Za-z0-9+/=]\{20,\}"' | tr -d '"' >"$W/sigs"
mapfile -t sigs <"$W/sigs"
((${#sigs[@]} == 2)) || die "expected 2 signatures: $out"
for k in 0 1; do
  i=$((k + 1))
  printf '%s' "${sigs[$k]}" | base64 -d >"$W/sig$i.bin"
  openssl pkeyutl -verify -pubin -inkey "$W/pub.pem" -pkeyopt digest:sha256 \
    -in "$W/h$i.bin" -sigfile "$W/sig$i.bin" >/dev/null || die "signature $i does not verify"
done

say "7. credentials/extendTransaction renews the SAD over the same approval, never adds a hash"
csc credentials/extendTransaction "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD\",\"hashes\":[\"$H5\"],\"hashAlgorithmOID\":\"$SHA256\"}" "${AUTH[@]}" >/dev/null
expect 400 "extendTransaction with a hash outside the approval"
grep -q invalid_request "$W/out" || die "unapproved extension: $(cat "$W/out")"
out="$(csc credentials/extendTransaction "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD\",\"hashes\":[\"$H3\",\"$H4\"],\"hashAlgorithmOID\":\"$SHA256\"}" "${AUTH[@]}")"
expect 200 credentials/extendTransaction
SAD2="$(field SAD <<<"$out")"
csc credentials/extendTransaction "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD\"}" "${AUTH[@]}" >/dev/null
expect 400 "extendTransaction twice with one SAD"
out="$(csc signatures/signHash "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD2\",\"hashes\":[\"$H4\",\"$H3\"],\"hashAlgorithmOID\":\"$SHA256\",\"signAlgo\":\"$RSA_SHA256\"}" "${AUTH[@]}")"
expect 200 "signHash (extended SAD, reversed order)"
grep -o '"signatures":\[[^]]*\]' <<<"$out" | grep -o '"[A-Za-z0-9+/=]\{20,\}"' | tr -d '"' >"$W/sigs"
mapfile -t sigs <"$W/sigs"
for pair in "0 4" "1 3"; do
  read -r k i <<<"$pair"
  printf '%s' "${sigs[$k]}" | base64 -d >"$W/sig$i.bin"
  openssl pkeyutl -verify -pubin -inkey "$W/pub.pem" -pkeyopt digest:sha256 \
    -in "$W/h$i.bin" -sigfile "$W/sig$i.bin" >/dev/null || die "signature $i does not verify"
done

say "8. replay: a signed hash again is refused; a hash never approved too; the old SAD is dead"
csc signatures/signHash "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD2\",\"hashes\":[\"$H1\"],\"hashAlgorithmOID\":\"$SHA256\",\"signAlgo\":\"$RSA_SHA256\"}" "${AUTH[@]}" >/dev/null
expect 400 "signHash replayed"
csc signatures/signHash "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD2\",\"hashes\":[\"$H5\"],\"hashAlgorithmOID\":\"$SHA256\",\"signAlgo\":\"$RSA_SHA256\"}" "${AUTH[@]}" >/dev/null
expect 400 "signHash for a hash the approval does not cover"
csc signatures/signHash "{\"credentialID\":\"$PRINCIPAL_ID\",\"SAD\":\"$SAD\",\"hashes\":[\"$H1\"],\"hashAlgorithmOID\":\"$SHA256\",\"signAlgo\":\"$RSA_SHA256\"}" "${AUTH[@]}" >/dev/null
expect 400 "signHash with the SAD replaced by extendTransaction"

say "9. the OTP already used is refused the second time"
csc credentials/authorize "{\"credentialID\":\"$PRINCIPAL_ID\",\"numSignatures\":1,\"hashes\":[\"$H1\"],\"hashAlgorithmOID\":\"$SHA256\",\"authData\":[{\"id\":\"PIN\",\"value\":\"$PIN\"},{\"id\":\"OTP\",\"value\":\"$otp\"}]}" "${AUTH[@]}" >/dev/null
expect 400 "authorize with a used OTP"

say "10. auth/revoke ends the token"
csc auth/revoke '{}' "${AUTH[@]}" >/dev/null
expect 204 auth/revoke
csc credentials/list '{}' "${AUTH[@]}" >/dev/null
expect 401 "credentials/list after revoke"

say "11. the audit log's hash chain is intact"
kill "$pid"
wait "$pid" || true
pid=""
"$APPLIANCE" verify-audit --db "$W/state.db" >&2 || die "audit chain"
say "OK: whole CSC flow with curl"
