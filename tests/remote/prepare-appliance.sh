#!/usr/bin/env bash
# Prepares a kyso-appliance for tests that run it as a process (the SDK's browser test): a
# private copy of the demo token, a throw-away TLS CA and certificate for 127.0.0.1, and a
# configuration with the user "principal" (password + TOTP) holding the principal credential.
#
#   prepare-appliance.sh KYSO_APPLIANCE DIR FIXTURE_DIR
# Writes DIR/softhsm2.conf, DIR/ca.crt, DIR/appliance.toml and prints the configuration's path.
# Run it as: SOFTHSM2_CONF=DIR/softhsm2.conf KYSO_APPLIANCE --config <path> --port-file DIR/port
#   KYSO_REMOTE_PASSWORD  the principal's password (default "mật khẩu hiệu trưởng")
#   KYSO_REMOTE_TOTP      the TOTP secret, base32 (default JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP)
#   KYSO_REMOTE_MULTISIGN hashes per signHash request (default 100)
#   KYSO_REMOTE_STATE_DB  state_db (default state.db in DIR; a postgresql:// URL for several nodes)
#   KYSO_REMOTE_MODULE    the HSM's PKCS#11 module (default: the fixture's, SoftHSM2)
#   KYSO_REMOTE_SIGN_THREADS  HSM sessions signing at once (default 2)
set -euo pipefail
APPLIANCE="${1:?usage: $0 KYSO_APPLIANCE DIR FIXTURE_DIR}"
W="${2:?}"
FIXTURE="${3:?}"
PASSWORD="${KYSO_REMOTE_PASSWORD:-mật khẩu hiệu trưởng}"
TOTP="${KYSO_REMOTE_TOTP:-JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP}"
mkdir -p "$W/tokens"
cp -a "$FIXTURE/tokens/." "$W/tokens/"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$W" \
  >"$W/softhsm2.conf"
q() { "$@" >"$W/prepare.log" 2>&1 || { cat "$W/prepare.log" >&2; exit 1; }; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=Kyso test TLS CA" -keyout "$W/ca.key" -out "$W/ca.crt"
q openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$W/tls.key" -out "$W/tls.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$W/san.ext"
q openssl x509 -req -in "$W/tls.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/san.ext" -out "$W/tls.crt"
HASH="$(printf '%s' "$PASSWORD" | "$APPLIANCE" hash-password --cost 10)"
MODULE="$(sed -n 's/.*"module": *"\([^"]*\)".*/\1/p' "$FIXTURE/manifest.json" | head -1)"
chmod 600 "$W/tls.key"
(umask 077 && printf '%s\n' "$TOTP" >"$W/principal.totp")
# The appliance's TOML profile (docs/configuration.md); the CSC credential id is "principal".
cat >"$W/appliance.toml" <<TOML
[server]
name = "Sở GD&ĐT – máy ký (thử nghiệm)"
listen = "127.0.0.1:0"
state_db = "${KYSO_REMOTE_STATE_DB:-state.db}"

[tls]
cert = "tls.crt"
key = "tls.key"

[hsm]
module = "${KYSO_REMOTE_MODULE:-${MODULE:-/usr/lib/softhsm/libsofthsm2.so}}"
token_label = "Kyso Demo"

[[credentials]]
id = "principal"
certificate = "$FIXTURE/certs/principal.der"

[[users]]
name = "principal"
password_hash = "$HASH"
totp_secret_file = "principal.totp"
credentials = ["principal"]

[limits]
multisign = ${KYSO_REMOTE_MULTISIGN:-100}
totp_window = 3
sign_threads = ${KYSO_REMOTE_SIGN_THREADS:-2}
TOML
"$APPLIANCE" check-config --config "$W/appliance.toml" >"$W/prepare.log" 2>&1 || {
  cat "$W/prepare.log" >&2
  exit 1
}
echo "$W/appliance.toml"
