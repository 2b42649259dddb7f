#!/usr/bin/env bash
# make-demo-token.sh OUTDIR: a fresh SoftHSM2 token "Kyso Demo" holding Vietnamese-style signing
# credentials, plus the demo PKI (root CA, issuing CA, OCSP responder, TSA, CRL) that issued them.
#
# Everything is made with the real tools a deployment meets (softhsm2-util, OpenSC pkcs11-tool,
# openssl ca, libp11's engine), so tests exercise what a field token looks like. The signers' keys
# are generated on the token and never leave it; the CSRs are signed by the token through libp11.
# CA, OCSP and TSA keys are plain files: they stand in for the CA's infrastructure, not for users.
#
# Env: KYSO_OCSP_URL  OCSP URL written into every end-entity certificate (default below); serve it
#                     later with: openssl ocsp -index OUTDIR/pki/index.txt -CA OUTDIR/pki/sub.crt
#                       -rsigner OUTDIR/pki/ocsp.crt -rkey OUTDIR/pki/ocsp.key -port 18960
#       The TSA answers with: openssl ts -reply -config OUTDIR/pki/openssl.cnf -queryfile Q.tsq
# Output: OUTDIR/manifest.json describes everything; OUTDIR/env.sh exports SOFTHSM2_CONF.
set -euo pipefail

readonly MODULE=/usr/lib/softhsm/libsofthsm2.so
readonly ENGINE=/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so
readonly TOKEN="Kyso Demo" BLANK="Kyso Blank" PIN=123456 SO_PIN=12345678
readonly OCSP_URL="${KYSO_OCSP_URL:-http://127.0.0.1:18960/}"

say() { printf 'make-demo-token: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

(($# == 1)) || die "usage: $0 OUTDIR"
OUT="$(realpath -m -- "$1")"
# These paths and the URL end up unquoted in openssl.cnf, softhsm2.conf and JSON.
[[ "$OUT" =~ ^/[A-Za-z0-9._/+@=:-]+$ ]] || die "OUTDIR must be a plain path (no spaces, quotes, \$, #, %)"
[[ "$OCSP_URL" =~ ^https?://[A-Za-z0-9._~:/?@!\&\'()*+=-]+$ ]] || die "KYSO_OCSP_URL is not a plain http(s) URL"
for tool in softhsm2-util pkcs11-tool openssl; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
[[ -f "$MODULE" ]] || die "SoftHSM2 module missing: $MODULE (apt install softhsm2)"
[[ -f "$ENGINE" ]] || die "libp11 engine missing: $ENGINE (apt install libengine-pkcs11-openssl)"

# rm -rf on a caller-supplied path: only ever delete an empty dir or one this script made.
if [[ -d "$OUT" && -n "$(ls -A "$OUT")" && ! -f "$OUT/softhsm2.conf" ]]; then
  die "refusing to delete $OUT: not empty and not made by this script"
fi
rm -rf "$OUT"
mkdir -p "$OUT"/{tokens,pki/newcerts,pki/csr,certs}
PKI="$OUT/pki"

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"; [[ -z "${pki_pid:-}" ]] || kill "$pki_pid" 2>/dev/null || true' EXIT
LOG="$LOGS/fg"

# q CMD...: run quietly; on failure show the tool's own output and stop.
q() {
  if ! "$@" >"$LOG" 2>&1; then
    say "failed: $*"
    cat "$LOG" >&2
    exit 1
  fi
}

cat >"$OUT/softhsm2.conf" <<EOF
directories.tokendir = $OUT/tokens
objectstore.backend = file
log.level = ERROR
EOF
export SOFTHSM2_CONF="$OUT/softhsm2.conf"

# One config for the whole PKI: [req] for CSRs, root_ca/sub_ca for `openssl ca -name`.
# string_mask utf8only + utf8 keep Vietnamese names as UTF8String, never T61/BMP.
cat >"$PKI/openssl.cnf" <<EOF
# Demo PKI made by tests/pki/make-demo-token.sh. Test use only.
dir      = $PKI
ocsp_url = $OCSP_URL

[ req ]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
default_md         = sha256
prompt             = no

[ req_dn ]
CN = unused (subjects always come from -subj)

[ ca ]
default_ca = sub_ca

[ root_ca ]
database         = \$dir/root-index.txt
new_certs_dir    = \$dir/newcerts
certificate      = \$dir/root.crt
private_key      = \$dir/root.key
crlnumber        = \$dir/root-crlnumber
rand_serial      = yes
default_md       = sha256
default_days     = 1826
default_crl_days = 365
policy           = policy_any
unique_subject   = no
copy_extensions  = none
string_mask      = utf8only
crl_extensions   = crl_ext

[ sub_ca ]
database         = \$dir/index.txt
new_certs_dir    = \$dir/newcerts
certificate      = \$dir/sub.crt
private_key      = \$dir/sub.key
crlnumber        = \$dir/crlnumber
rand_serial      = yes
default_md       = sha256
default_days     = 730
default_crl_days = 30
policy           = policy_any
unique_subject   = no
copy_extensions  = none
string_mask      = utf8only
crl_extensions   = crl_ext

# With -preserveDN every attribute of the request is kept, in the request's order.
[ policy_any ]
commonName = supplied

# "openssl ts -reply -config openssl.cnf" answers RFC 3161 requests with the demo TSA.
# The policy OID is under 2.999, the arc reserved for examples.
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
serial                 = \$dir/tsa-serial
signer_cert            = \$dir/tsa.crt
certs                  = \$dir/chain.pem
signer_key             = \$dir/tsa.key
signer_digest          = sha256
default_policy         = 2.999.1.1
digests                = sha256, sha384, sha512
accuracy               = secs:1
ordering               = no
tsa_name               = yes
ess_cert_id_chain      = no
ess_cert_id_alg        = sha256

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ v3_root ]
basicConstraints     = critical, CA:TRUE
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_sub ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints  = URI:file://\$dir/root.crl

[ ee_sign ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess    = OCSP;URI:\$ocsp_url
crlDistributionPoints  = URI:file://\$dir/sub.crl

[ ee_ocsp ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
extendedKeyUsage       = OCSPSigning
noCheck                = ignored
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess    = OCSP;URI:\$ocsp_url
crlDistributionPoints  = URI:file://\$dir/sub.crl

[ ee_tsa ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
extendedKeyUsage       = critical, timeStamping
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
authorityInfoAccess    = OCSP;URI:\$ocsp_url
crlDistributionPoints  = URI:file://\$dir/sub.crl
EOF
touch "$PKI/index.txt" "$PKI/root-index.txt"
echo 01 >"$PKI/crlnumber"
echo 01 >"$PKI/root-crlnumber"
echo 01 >"$PKI/tsa-serial"

# libp11 takes its module path only from an OpenSSL config; kept apart from openssl.cnf so plain
# `openssl ca -config` runs never load the engine.
cat >"$PKI/engine.cnf" <<EOF
openssl_conf = openssl_init
[ openssl_init ]
engines = engine_section
[ engine_section ]
pkcs11 = pkcs11_section
[ pkcs11_section ]
engine_id    = pkcs11
dynamic_path = $ENGINE
MODULE_PATH  = $MODULE
init         = 0
EOF

ossl_ca() { q openssl ca -batch -config "$PKI/openssl.cnf" -utf8 -preserveDN -notext "$@"; }
subj() { printf '/%s' "${1//, //}"; }  # "C=VN, ST=X" -> "/C=VN/ST=X" (no value contains ", ")

# The software side of the PKI runs in the background while the token generates its keys.
make_ca_side() {
  LOG="$LOGS/bg"
  local dn_base="C=VN, O=Kyso Demo PKI"
  say "CA keys and certificates (root RSA-3072, issuing CA RSA-2048, OCSP, TSA)"
  q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$PKI/root.key"
  q openssl req -x509 -new -config "$PKI/openssl.cnf" -utf8 -key "$PKI/root.key" -sha256 \
    -subj "$(subj "$dn_base, CN=Kyso Demo Root CA")" -days 3650 -extensions v3_root \
    -out "$PKI/root.crt"
  q openssl ca -batch -config "$PKI/openssl.cnf" -name root_ca -gencrl -out "$PKI/root.crl.pem"
  q openssl crl -in "$PKI/root.crl.pem" -outform DER -out "$PKI/root.crl"

  local name issuer ext cn
  for name in sub ocsp tsa; do
    case "$name" in
      sub) issuer=root_ca ext=v3_sub cn="Kyso Demo Issuing CA" ;;
      ocsp) issuer=sub_ca ext=ee_ocsp cn="Kyso Demo OCSP Responder" ;;
      tsa) issuer=sub_ca ext=ee_tsa cn="Kyso Demo TSA" ;;
    esac
    q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/$name.key"
    q openssl req -new -config "$PKI/openssl.cnf" -utf8 -key "$PKI/$name.key" \
      -subj "$(subj "$dn_base, CN=$cn")" -out "$PKI/csr/$name.csr"
    ossl_ca -name "$issuer" -extensions "$ext" -in "$PKI/csr/$name.csr" -out "$PKI/$name.crt"
  done
  cat "$PKI/sub.crt" "$PKI/root.crt" >"$PKI/chain.pem"
}
make_ca_side &
pki_pid=$!

say "SoftHSM2 tokens '$TOKEN' and '$BLANK'"
q softhsm2-util --init-token --free --label "$TOKEN" --pin "$PIN" --so-pin "$SO_PIN"
q softhsm2-util --init-token --free --label "$BLANK" --pin "$PIN" --so-pin "$SO_PIN"
p11() { q pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"; }

# Credentials: name|CKA_ID|key|role|kind|status|subject (exact DN order, as printed by OpenSSL).
readonly TEACHER_DN="C=VN, ST=HÀ NỘI, L=Quận Ba Đình, O=Trường THPT Chu Văn An, title=Giáo viên chủ nhiệm"
readonly SCHOOL_DN="C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An"
CREDS=(
  "teacher|01|rsa2048|teacher|person|valid|$TEACHER_DN, UID=CCCD:001185012345, CN=Nguyễn Thị Ánh"
  "principal|02|rsa3072|principal|person|valid|$SCHOOL_DN, title=Hiệu trưởng, UID=CCCD:001080054321, CN=Trần Văn Bình"
  "seal|03|rsa2048|seal|organization|valid|$SCHOOL_DN, UID=MNS:1047665, CN=Trường THPT Chu Văn An"
  "teacher-ec|04|ec-p256|teacher|person|valid|C=VN, ST=HỒ CHÍ MINH, O=Trường Tiểu học Lê Quý Đôn, title=Giáo viên bộ môn, UID=CMND:025123456, UID=MST:0301234567, CN=Lê Hoàng Phúc"
  "expired|05|rsa2048|teacher|person|expired|$TEACHER_DN, UID=CCCD:001190011111, CN=Phạm Minh Đức"
  "revoked|06|rsa2048|teacher|person|revoked|$TEACHER_DN, UID=CCCD:001192022222, CN=Võ Thị Hạnh"
)

say "on-token key pairs and CSRs signed by them (libp11 engine)"
for c in "${CREDS[@]}"; do
  IFS='|' read -r name id key _ _ _ dn <<<"$c"
  case "$key" in
    rsa2048) spec=rsa:2048 ;;
    rsa3072) spec=rsa:3072 ;;
    ec-p256) spec=EC:prime256v1 ;;
  esac
  p11 --login --pin "$PIN" --keypairgen --key-type "$spec" --usage-sign --id "$id" --label "$name"
  q env OPENSSL_CONF="$PKI/engine.cnf" openssl req -new -config "$PKI/openssl.cnf" -utf8 -sha256 \
    -engine pkcs11 -keyform engine \
    -key "pkcs11:token=${TOKEN// /%20};id=%$id;type=private;pin-value=$PIN" \
    -subj "$(subj "$dn")" -out "$PKI/csr/$name.csr"
done

wait "$pki_pid" || die "CA side failed (see above)"
pki_pid=

say "issuing end-entity certificates, revoking 'revoked', CRL"
for c in "${CREDS[@]}"; do
  IFS='|' read -r name _ _ _ _ status _ <<<"$c"
  if [[ $status == expired ]]; then
    validity=(-startdate 20240101000000Z -enddate 20250101000000Z)
  else
    validity=(-days 730)
  fi
  ossl_ca -name sub_ca -extensions ee_sign "${validity[@]}" -in "$PKI/csr/$name.csr" \
    -out "$OUT/certs/$name.crt"
  q openssl x509 -in "$OUT/certs/$name.crt" -outform DER -out "$OUT/certs/$name.der"
  if [[ $status == revoked ]]; then
    q openssl ca -config "$PKI/openssl.cnf" -name sub_ca -revoke "$OUT/certs/$name.crt" \
      -crl_reason keyCompromise
  fi
done
# The CDP names sub.crl, so that one is DER as RFC 5280 expects; sub.crl.pem is for humans.
q openssl ca -batch -config "$PKI/openssl.cnf" -name sub_ca -gencrl -out "$PKI/sub.crl.pem"
q openssl crl -in "$PKI/sub.crl.pem" -outform DER -out "$PKI/sub.crl"

say "writing certificates and the CA chain onto the token"
for c in "${CREDS[@]}"; do
  IFS='|' read -r name id _ <<<"$c"
  p11 --login --pin "$PIN" --write-object "$OUT/certs/$name.der" --type cert --id "$id" --label "$name"
done
for ca in "sub|a1|Kyso Demo Issuing CA" "root|a2|Kyso Demo Root CA"; do
  IFS='|' read -r name id label <<<"$ca"
  q openssl x509 -in "$PKI/$name.crt" -outform DER -out "$PKI/$name.der"
  p11 --login --pin "$PIN" --write-object "$PKI/$name.der" --type cert --id "$id" --label "$label"
done

say "checking certificates against the token and the chain"
for c in "${CREDS[@]}"; do
  IFS='|' read -r name id _ _ _ status dn <<<"$c"
  crt="$OUT/certs/$name.crt"
  # Normalise both sides through OpenSSL so only the key material is compared.
  p11 --read-object --type pubkey --id "$id" --output-file "$LOGS/token.der"
  q openssl pkey -pubin -inform DER -in "$LOGS/token.der" -outform DER -out "$LOGS/token.spki"
  q openssl x509 -in "$crt" -noout -pubkey -out "$LOGS/cert.pem"
  q openssl pkey -pubin -in "$LOGS/cert.pem" -outform DER -out "$LOGS/cert.spki"
  cmp -s "$LOGS/token.spki" "$LOGS/cert.spki" || die "$name: certificate key differs from token key $id"

  got="$(openssl x509 -in "$crt" -noout -subject -nameopt utf8,sep_comma_plus_space)"
  [[ "$got" == "subject=$dn" ]] || die "$name: subject mangled: $got"

  verify=(openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/sub.crt")
  case "$status" in
    valid)
      q "${verify[@]}" "$crt"
      q "${verify[@]}" -crl_check -CRLfile "$PKI/sub.crl" "$crt" ;;
    expired) want="certificate has expired" ;;
    revoked) want="certificate revoked"; verify+=(-crl_check -CRLfile "$PKI/sub.crl") ;;
  esac
  if [[ $status != valid ]]; then
    if out="$("${verify[@]}" "$crt" 2>&1)" || [[ "$out" != *"$want"* ]]; then
      die "$name: expected '$want' from openssl verify, got: $out"
    fi
  fi
done

(umask 077 && printf '%s' "$PIN" >"$OUT/pin.txt")
cat >"$OUT/env.sh" <<EOF
# source me: points SoftHSM2 at the demo token made by make-demo-token.sh
export SOFTHSM2_CONF=$OUT/softhsm2.conf
export KYSO_TEST_DIR=$OUT
EOF

# Values are plain ASCII paths (checked above) and fixed UTF-8 names: no JSON escaping needed.
creds_json=""
for c in "${CREDS[@]}"; do
  IFS='|' read -r name id key role kind status dn <<<"$c"
  cn="" uids=""
  IFS=',' read -ra rdns <<<"$dn"
  for rdn in "${rdns[@]}"; do
    rdn="${rdn# }"
    case "$rdn" in
      CN=*) cn="${rdn#CN=}" ;;
      UID=*) uids+="${uids:+,}\"${rdn#UID=}\"" ;;
    esac
  done
  creds_json+="${creds_json:+,
}    {\"name\":\"$name\",\"role\":\"$role\",\"id\":\"$id\",\"key\":\"$key\",\"cert\":\"$OUT/certs/$name.crt\",\"cert_der\":\"$OUT/certs/$name.der\",\"cn\":\"$cn\",\"uids\":[$uids],\"kind\":\"$kind\",\"status\":\"$status\"}"
done
cat >"$OUT/manifest.json" <<EOF
{
  "module": "$MODULE",
  "softhsm2_conf": "$OUT/softhsm2.conf",
  "token_label": "$TOKEN",
  "blank_token_label": "$BLANK",
  "user_pin": "$PIN",
  "so_pin": "$SO_PIN",
  "pin_file": "$OUT/pin.txt",
  "pki": {
    "root": "$PKI/root.crt",
    "sub": "$PKI/sub.crt",
    "chain": "$PKI/chain.pem",
    "ocsp_cert": "$PKI/ocsp.crt",
    "ocsp_key": "$PKI/ocsp.key",
    "tsa_cert": "$PKI/tsa.crt",
    "tsa_key": "$PKI/tsa.key",
    "index": "$PKI/index.txt",
    "crl": "$PKI/sub.crl",
    "ocsp_url": "$OCSP_URL",
    "openssl_cnf": "$PKI/openssl.cnf"
  },
  "credentials": [
$creds_json
  ]
}
EOF
say "done: $OUT (source $OUT/env.sh)"
