#!/bin/bash
# `kyso browser-policy` as IT and the package scripts run it, into a scratch root (never this
# machine's /etc): the managed-policy files for Chromium, Chrome and Edge follow the agent's
# allow-list (written, unchanged, removed when the list empties), and `show` reports per installed
# browser which origins the policy in effect covers, other files of the directory included.
# Usage: test-browser-policy.sh KYSO_CLI
set -euo pipefail
KYSO=${1:?usage: test-browser-policy.sh KYSO_CLI}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=$T/root
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# The value of a JSON path (a JS expression on `j`) in a file or on stdin.
json() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1] === "-" ? 0 : process.argv[1], "utf8")); const v = eval(process.argv[2]); console.log(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"; }

DIRS=(etc/chromium/policies/managed etc/opt/chrome/policies/managed etc/opt/edge/policies/managed)
cat >"$T/agent.toml" <<'TOML'
[origins]
allowed = ["https://hocba.example.edu.vn", "https://HocBa.Truong-B.edu.vn:8443"]
TOML

# ---- write: one file per browser, both policies, the normalized allow-list ------------------
umask 077   # the files must still be readable by the browser (0644, directories 0755)
"$KYSO" --lang en browser-policy write --config "$T/agent.toml" --root "$R" >"$T/out"
want='["https://hocba.example.edu.vn","https://hocba.truong-b.edu.vn:8443"]'
for d in "${DIRS[@]}"; do
  f=$R/$d/kyso-browser-policy.json
  [[ -f $f ]] || fail "$f not written"
  # Exactly the two policies (LocalNetworkAllowedForUrls does not cover loopback), each the list.
  got=$(json "$f" 'Object.keys(j).sort().map(k => k + "=" + JSON.stringify(j[k])).join(" ")')
  [[ $got == "LocalNetworkAccessAllowedForUrls=$want LoopbackNetworkAllowedForUrls=$want" ]] || fail "$f: $got"
  [[ $(stat -c %a "$f") == 644 ]] || fail "$f mode $(stat -c %a "$f")"
  [[ $(stat -c %a "$R/$d") == 755 ]] || fail "$R/$d mode $(stat -c %a "$R/$d")"
done
grep -q 'Google Chrome: .*(written)' "$T/out" || fail "write did not report Chrome: $(cat "$T/out")"
ok "write: Chromium, Chrome and Edge get both policies with the normalized allow-list"

"$KYSO" --lang en browser-policy write --config "$T/agent.toml" --root "$R" >"$T/out"
[[ $(grep -c '(unchanged)' "$T/out") == 3 ]] || fail "second write rewrote files: $(cat "$T/out")"
ok "write again: unchanged"

# ---- show: per installed browser ------------------------------------------------------------
mkdir -p "$R/usr/bin" && touch "$R/usr/bin/chromium"
"$KYSO" --lang en browser-policy show --config "$T/agent.toml" --root "$R" --json >"$T/show.json" ||
  fail "show exits non-zero while every origin is covered: $(cat "$T/show.json")"
got=$(json "$T/show.json" 'j.browsers.map(b => b.browser + ":" + b.installed + ":" + b.covered.length).join(" ")')
[[ $got == "chromium:true:2 chrome:false:2 edge:false:2" ]] || fail "show: $got"
ok "show: installed browsers and covered origins"

# kyso doctor says the same per installed browser (issue 12): covered here.
doctor_browsers() {
  "$KYSO" --lang en doctor --config "$T/agent.toml" --root "$R" --usb-inventory /dev/null \
    --local-tls /nonexistent --json 2>/dev/null | json - 'j.checks.filter(c => c.check === "browser").map(c => c.status + ":" + (c.details.browser ?? "-") + ":" + (c.details.uncovered ?? []).join(",")).join(" ")'
}
got=$(doctor_browsers || true)
[[ $got == "ok:chromium:" ]] || fail "doctor, every origin covered: $got"
ok "doctor: the installed browser's policy covers every allow-listed origin"

# IT's own file, later by name, replaces Kyso's value of one policy: the other still covers
# loopback, and show says which file overrides Kyso's.
echo '{"LocalNetworkAccessAllowedForUrls": ["[*.]example.edu.vn"]}' >"$R/${DIRS[0]}/zz-school.json"
"$KYSO" --lang en browser-policy show --config "$T/agent.toml" --root "$R" >"$T/out" || fail "show failed: $(cat "$T/out")"
grep -q 'zz-school.json, which overrides' "$T/out" || fail "no override warning: $(cat "$T/out")"
# Both policies overridden, one origin outside IT's pattern: not covered, exit 1.
echo '{"LocalNetworkAccessAllowedForUrls": ["[*.]example.edu.vn"], "LoopbackNetworkAllowedForUrls": ["https://hocba.example.edu.vn:443"]}' >"$R/${DIRS[0]}/zz-school.json"
if "$KYSO" --lang en browser-policy show --config "$T/agent.toml" --root "$R" --json >"$T/show.json"; then fail "show exit 0 with an uncovered origin"; fi
got=$(json "$T/show.json" 'const c = j.browsers.find(b => b.browser === "chromium"); JSON.stringify([c.covered, c.uncovered])')
# [*.]example.edu.vn covers hocba.example.edu.vn; nothing covers truong-b.
[[ $got == '[["https://hocba.example.edu.vn"],["https://hocba.truong-b.edu.vn:8443"]]' ]] || fail "coverage: $got"
got=$(doctor_browsers || true)
[[ $got == "warn:chromium:https://hocba.truong-b.edu.vn:8443" ]] || fail "doctor, one origin not covered: $got"
ok "doctor: warns per browser about the origin its policy does not cover"
# A broken file is ignored by the browser: said so.
echo '{"LocalNetworkAccessAllowedForUrls": [' >"$R/${DIRS[0]}/broken.json"
"$KYSO" --lang en browser-policy show --config "$T/agent.toml" --root "$R" >"$T/out" || true
grep -q 'broken.json is not valid JSON' "$T/out" || fail "no warning about the broken file: $(cat "$T/out")"
rm "$R/${DIRS[0]}/zz-school.json" "$R/${DIRS[0]}/broken.json"
ok "show: later files override (per policy), patterns, broken files, exit 1 when an origin is missing"

# ---- the list empties: the files go (an empty list would still override another file) --------
printf '[origins]\nallowed = []\n' >"$T/empty.toml"
"$KYSO" --lang en browser-policy write --config "$T/empty.toml" --root "$R" >"$T/out"
for d in "${DIRS[@]}"; do [[ ! -e $R/$d/kyso-browser-policy.json ]] || fail "$d: file kept for an empty list"; done
"$KYSO" --lang en browser-policy write --config "$T/agent.toml" --root "$R" --quiet >"$T/out"
[[ ! -s $T/out ]] || fail "--quiet printed: $(cat "$T/out")"
"$KYSO" --lang en browser-policy remove --root "$R" --quiet
for d in "${DIRS[@]}"; do [[ ! -e $R/$d/kyso-browser-policy.json ]] || fail "remove left $d"; done
ok "empty allow-list and remove take the files away"

# ---- a configuration with a mistake changes nothing --------------------------------------------
"$KYSO" --lang en browser-policy write --config "$T/agent.toml" --root "$R" --quiet
printf '[origins]\nallowed = ["ftp://x"]\n' >"$T/bad.toml"
if "$KYSO" --lang en browser-policy write --config "$T/bad.toml" --root "$R" >"$T/out" 2>&1; then fail "a bad configuration was accepted"; fi
[[ $(json "$R/${DIRS[0]}/kyso-browser-policy.json" 'j.LoopbackNetworkAllowedForUrls.length') == 2 ]] || fail "a bad configuration changed the files"
ok "a configuration error leaves the files as they were"
