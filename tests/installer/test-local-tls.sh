#!/bin/bash
# kyso-local-tls against temporary NSS databases and a temporary anchor directory: the CA is
# trusted (C,,) where it should be, each desktop user's own agent certificate verifies with
# OpenSSL and NSS and its key is readable by that user alone, the CA key is gone, a second run
# only adds missing trust, a new user gets a certificate under a new CA, and uninstall removes
# exactly what was added. Nothing outside a temp directory is touched.
# Usage: test-local-tls.sh <path to kyso-local-tls>
set -euo pipefail
TOOL=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

HOST=testhost
NICK="Kyso Local CA $HOST $(date -u +%Y-%m-%d)"
CHROME=$T/home/teacher/.pki/nssdb
FIREFOX=$T/home/teacher/.mozilla/firefox/abcd1234.default-esr
mkdir -p "$CHROME" "$FIREFOX" "$T/anchors" "$T/home/principal"
certutil -N --empty-password -d "sql:$CHROME"
certutil -N --empty-password -d "sql:$FIREFOX"

# Someone else's CA, in the NSS db and the anchor directory: must survive our uninstall.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=Other CA" \
  -keyout "$T/other.key" -out "$T/other.crt" 2>/dev/null
rm -f "$T/other.key"
certutil -A -d "sql:$CHROME" -n "Other CA" -t "C,," -i "$T/other.crt"
cp "$T/other.crt" "$T/anchors/other-ca.crt"

run() {
  "$TOOL" "$1" --tls-dir "$T/tls" --state-file "$T/state/local-tls.state" --anchor-dir "$T/anchors" \
    --hostname "$HOST" --no-update-ca-certificates --home "$T/home/teacher" --home "$T/home/principal" "${@:2}"
}
trust_of() { certutil -L -d "sql:$1" | awk -v n="$NICK" 'index($0, n) == 1 { print $NF }'; }
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }

# ---- install ---------------------------------------------------------------------------------
run install
[[ $(trust_of "$CHROME") == "C,," ]] || fail "Chrome db: CA not trusted with C,,"
[[ $(trust_of "$FIREFOX") == "C,," ]] || fail "Firefox db: CA not trusted with C,,"
ok "certutil -L shows '$NICK' with trust C,, in both databases"

[[ $(openssl x509 -noout -subject -in "$T/tls/ca.crt") == *"CN = $NICK"* ]] || fail "CA subject lacks host and date"
TEACHER=$T/tls/users/teacher
PRINCIPAL=$T/tls/users/principal
for u in "$TEACHER" "$PRINCIPAL"; do
  openssl verify -x509_strict -purpose sslserver -CAfile "$T/tls/ca.crt" "$u/agent.crt" >/dev/null ||
    fail "$u/agent.crt does not verify against the CA"
done
ok "openssl verify: each user's agent certificate chains to the local CA"
SAN=$(openssl x509 -noout -ext subjectAltName -in "$TEACHER/agent.crt" | tail -1)
for name in "DNS:localhost" "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"; do
  [[ $SAN == *"$name"* ]] || fail "SAN lacks $name ($SAN)"
done
ok "SAN: $SAN"
[[ $(openssl x509 -noout -ext nameConstraints -in "$T/tls/ca.crt") == *"DNS:localhost"* ]] ||
  fail "CA is not name-constrained to localhost"
if command -v vfychain >/dev/null; then
  [[ $(vfychain -d "sql:$FIREFOX" -u 1 -a "$TEACHER/agent.crt" 2>&1) == *"Chain is good"* ]] ||
    fail "NSS (vfychain) does not accept the agent certificate for TLS servers"
  ok "NSS vfychain: chain is good for an SSL server"
fi
# Each agent key matches its certificate; the users' keys differ; they are the only private keys
# left anywhere, and none can be read by anyone but its owner (issue 12, finding 9: one 0644
# agent.key served every account on the computer).
for u in "$TEACHER" "$PRINCIPAL"; do
  [[ $(openssl pkey -in "$u/agent.key" -pubout | sha256sum) == \
     $(openssl x509 -in "$u/agent.crt" -noout -pubkey | sha256sum) ]] || fail "$u: agent key does not match"
  [[ $(stat -c %a "$u") == 700 && $(stat -c %a "$u/agent.key") == 600 ]] ||
    fail "$u: directory $(stat -c %a "$u"), key $(stat -c %a "$u/agent.key"): want 700 and 600"
done
cmp -s "$TEACHER/agent.key" "$PRINCIPAL/agent.key" && fail "two users share one agent key"
[[ $(openssl x509 -noout -subject -in "$PRINCIPAL/agent.crt") == *"OU = principal"* ]] ||
  fail "the principal's certificate does not name her"
KEYS=$(grep -rl "PRIVATE KEY" "$T" --exclude-dir=nssdb --exclude-dir=firefox | sort || true)
[[ $KEYS == "$(printf '%s\n' "$PRINCIPAL/agent.key" "$TEACHER/agent.key")" ]] ||
  fail "private keys other than the users' agent keys remain: $KEYS"
READABLE=$(find "$T" -path "$T/home" -prune -o -type f -perm /077 -exec grep -l "PRIVATE KEY" {} + || true)
[[ -z $READABLE ]] || fail "private keys readable by group or others: $READABLE"
ok "CA private key destroyed; one agent key per user, 0600 in a 0700 directory"
cmp -s "$T/tls/ca.crt" "$T/anchors/kyso-local-ca.crt" || fail "CA not in the anchor directory"
status() {
  "$TOOL" status --tls-dir "$T/tls" --state-file "$T/state/local-tls.state" --home "$T/home/teacher" \
    --home "$T/home/principal" "$@"
}
status >/dev/null || fail "status reports a problem"
status --json | python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["ok"] and d["installed"], d
assert {t["kind"] for t in d["trust"]} == {"file", "system", "nssdb"}, d
assert [(u["name"], u["status"]) for u in d["users"]] == [("teacher", "ok"), ("principal", "ok")], d
assert d["agentCertificate"]["file"].endswith("/users/teacher/agent.crt"), d' || fail "status --json"
ok "status (text and --json): everything recorded is present"

# ---- second run: same CA, trust added only where missing -------------------------------------
FP1=$(fp "$T/tls/ca.crt")
FIREFOX2=$T/home/teacher/.mozilla/firefox/new5678.second
mkdir -p "$FIREFOX2"
certutil -N --empty-password -d "sql:$FIREFOX2"
run install
[[ $(fp "$T/tls/ca.crt") == "$FP1" ]] || fail "a second install replaced a valid CA"
[[ $(trust_of "$FIREFOX2") == "C,," ]] || fail "a second install did not trust the CA in a new profile"
[[ $(certutil -L -d "sql:$FIREFOX" | grep -c "^$NICK") == 1 ]] || fail "the CA was added twice"
ok "second install keeps the CA and adds it to a new Firefox profile only"

# A profile made later, trusted by the user's own agent start (user-trust), not by root.
FIREFOX3=$T/home/teacher/.mozilla/firefox/late9999.third
mkdir -p "$FIREFOX3"
certutil -N --empty-password -d "sql:$FIREFOX3"
if json=$(status --json); then fail "status does not report the new profile's missing trust"; fi
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); p = sys.argv[2]
assert [t["status"] for t in d["trust"] if t["path"] == p] == ["missing"], d' "$json" "$FIREFOX3" ||
  fail "status --json does not list $FIREFOX3 as missing"
HOME=$T/home/teacher "$TOOL" user-trust --tls-dir "$T/tls" --state-file "$T/state/local-tls.state"
[[ $(trust_of "$FIREFOX3") == "C,," ]] || fail "user-trust did not trust the CA in the user's new profile"
[[ $(certutil -L -d "sql:$FIREFOX" | grep -c "^$NICK") == 1 ]] || fail "user-trust added the CA twice"
status >/dev/null || fail "status reports a problem after user-trust"
ok "status shows a profile made after install as missing; user-trust adds the CA there"

# ---- a new desktop user: a certificate for them means a new CA for everyone -------------------
# (the old CA's key is gone); the old CA's trust is removed, every user's certificate replaced.
mkdir -p "$T/home/newteacher"
OLD_TEACHER=$(fp "$TEACHER/agent.crt")
run install --home "$T/home/newteacher" 2>"$T/new-user.log"
grep -q "user newteacher has no agent certificate yet" "$T/new-user.log" ||
  fail "install does not say why it made a new CA: $(cat "$T/new-user.log")"
[[ $(fp "$T/tls/ca.crt") != "$FP1" ]] || fail "a new desktop user did not get a new CA"
for u in teacher principal newteacher; do
  openssl verify -x509_strict -purpose sslserver -CAfile "$T/tls/ca.crt" "$T/tls/users/$u/agent.crt" \
    >/dev/null || fail "$u's certificate does not verify against the new CA"
done
[[ $(fp "$TEACHER/agent.crt") != "$OLD_TEACHER" ]] || fail "the teacher kept a certificate of the old CA"
[[ $(certutil -L -d "sql:$FIREFOX" | grep -c "^$NICK") == 1 ]] || fail "old CA left next to the new one"
certutil -L -d "sql:$FIREFOX" -n "$NICK" -a >"$T/in-db.pem"
[[ $(fp "$T/in-db.pem") == "$(fp "$T/tls/ca.crt")" ]] || fail "the NSS db holds the old CA"
run install --home "$T/home/newteacher" 2>"$T/again.log"
grep -q "already installed" "$T/again.log" || fail "a third run replaced a CA valid for every user"
ok "a new desktop user gets a certificate under a new CA; the old CA's trust is gone"

# ---- uninstall --------------------------------------------------------------------------------
run uninstall --home "$T/home/newteacher"
for db in "$CHROME" "$FIREFOX" "$FIREFOX2" "$FIREFOX3"; do
  [[ -z $(trust_of "$db") ]] || fail "CA still in $db"
done
[[ ! -e $T/anchors/kyso-local-ca.crt ]] || fail "CA still in the anchor directory"
[[ ! -e $T/tls && ! -e $T/state/local-tls.state ]] || fail "files left behind: $(find "$T/tls" "$T/state")"
[[ $(certutil -L -d "sql:$CHROME") == *"Other CA"* ]] || fail "uninstall removed someone else's CA"
[[ -f $T/anchors/other-ca.crt ]] || fail "uninstall removed someone else's anchor"
ok "uninstall removed the CA from every NSS db and the anchor dir, and nothing else"

# ---- renewal: a certificate expiring within 30 days is replaced by a new CA -------------------
run install --days 10
FP_OLD=$(fp "$T/tls/ca.crt")
if status >/dev/null; then
  fail "status does not report a certificate expiring in 10 days"
fi
run install
[[ $(fp "$T/tls/ca.crt") != "$FP_OLD" ]] || fail "an expiring certificate was not renewed"
[[ $(certutil -L -d "sql:$CHROME" | grep -c "^$NICK") == 1 ]] || fail "old CA left next to the new one"
certutil -L -d "sql:$CHROME" -n "$NICK" -a >"$T/in-db.pem"
[[ $(fp "$T/in-db.pem") == "$(fp "$T/tls/ca.crt")" ]] || fail "the NSS db holds the old CA"
run uninstall
ok "an expiring certificate is renewed with a new CA, the old one's trust removed"
echo PASS
