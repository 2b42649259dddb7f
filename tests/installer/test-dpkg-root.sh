#!/bin/bash
# Installs the built packages into a scratch root with dpkg (maintainer scripts run chrootless
# with DPKG_ROOT set, as they would for an image build), checks files, units, configs, the
# appliance's system user and the agent's local TLS, reinstalls, purges, and checks that the
# host was not touched at any point.
# Usage: test-dpkg-root.sh <output dir of installer.cpack> <package>...
set -euo pipefail
OUT=$1
shift
PKGS=("$@")
T=$(mktemp -d)
AGENT_PID=""
cleanup() {
  if [[ -n $AGENT_PID ]]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
R=$T/root
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
has() { local p; for p in "${PKGS[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }
deb_of() { find "$OUT" -maxdepth 1 -name "${1}_*.deb" -print -quit; }

DEBS=()
for p in "${PKGS[@]}"; do
  d=$(deb_of "$p")
  [[ -n $d ]] || fail "no ${p}_*.deb in $OUT (did installer.cpack run?)"
  DEBS+=("$d")
done

# ---- the host, before ------------------------------------------------------------------------
# Only what these packages could have touched, so other work on the machine does not count.
host_state() {
  local f
  for f in /etc/kyso /var/lib/kyso /var/lib/kyso-appliance /usr/local/share/ca-certificates \
           /etc/systemd/user/default.target.wants/kyso-agent.service \
           /etc/systemd/system/multi-user.target.wants/kyso-appliance.service \
           /etc/systemd/system/paths.target.wants/kyso-browser-policy.path \
           /etc/systemd/system/paths.target.wants/kyso-local-tls.path \
           /etc/chromium/policies/managed/kyso-browser-policy.json \
           /var/lib/systemd/deb-systemd-user-helper-enabled/kyso-agent.service.dsh-also; do
    if [[ -e $f || -L $f ]]; then stat -c '%n %Y %s' "$f"; else echo "$f absent"; fi
  done
  ls /usr/local/share/ca-certificates 2>&1 || true
  grep -c '^kyso' /etc/passwd /etc/group || true
  dpkg-query -W -f='${Package} ${Status}\n' 'kyso-*' 2>&1 || true
  if [[ -d $HOME/.pki/nssdb ]]; then certutil -L -d "sql:$HOME/.pki/nssdb" 2>&1 || true; fi
}
host_state >"$T/host.before"

# ---- a scratch root: dpkg database, users, a teacher with Chrome and Firefox ------------------
mkdir -p "$R"/var/lib/dpkg/{info,updates,triggers} "$R/etc" "$R/usr/bin"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/bash\nteacher:x:1000:1000:Teacher:/home/teacher:/bin/bash\nprincipal:x:1001:1001:Principal:/home/principal:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\nteacher:x:1000:\nprincipal:x:1001:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\nteacher:*:19000:0:99999:7:::\nprincipal:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
printf 'root:*::\nteacher:!::\nprincipal:!::\n' >"$R/etc/gshadow"
chmod 640 "$R/etc/shadow" "$R/etc/gshadow"
CHROME=$R/home/teacher/.pki/nssdb
FIREFOX=$R/home/teacher/.mozilla/firefox/k7s0.default-esr
mkdir -p "$CHROME" "$FIREFOX" "$R/home/principal"
certutil -N --empty-password -d "sql:$CHROME"
certutil -N --empty-password -d "sql:$FIREFOX"
# A Chromium in the root: postinst then makes ~/.pki/nssdb for users who never started it.
printf '#!/bin/sh\n' >"$R/usr/bin/chromium"
chmod 755 "$R/usr/bin/chromium"

DPKG=(dpkg --root="$R" --force-script-chrootless --force-not-root --force-depends --no-triggers)
# Dependencies (libc6, openssl...) are not in the scratch root: dpkg's complaints go to a log.
"${DPKG[@]}" -i "${DEBS[@]}" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i into the scratch root failed"; }
ok "dpkg --root installed: ${PKGS[*]}"

check_file() { # <mode> <path in root>
  [[ -e $R$2 ]] || fail "$2 missing"
  [[ $(stat -c %a "$R$2") == "$1" ]] || fail "$2 has mode $(stat -c %a "$R$2"), expected $1"
}
is_conffile() { grep -qx "$2" "$R/var/lib/dpkg/info/$1.conffiles" || fail "$2 is not a conffile of $1"; }
nick_trust() { certutil -L -d "sql:$1" | awk '/^Kyso Local CA / { print $NF }'; }

# Rewrites a unit's binary path into the scratch root and verifies it with systemd-analyze.
verify_unit() { # <--user|--system> <unit path in root> [more units]
  local scope=$1; shift
  if ! command -v systemd-analyze >/dev/null; then
    echo "skip: systemd-analyze not installed, units not verified"
    return 0
  fi
  local u copies=()
  mkdir -p "$T/units" "$T/xdg"
  chmod 700 "$T/xdg"
  for u in "$@"; do
    sed -E "s#^(Exec[A-Za-z]*=[-@:+!]*)/usr/#\\1$R/usr/#" "$R$u" >"$T/units/$(basename "$u")"
    copies+=("$T/units/$(basename "$u")")
  done
  XDG_RUNTIME_DIR=$T/xdg systemd-analyze "$scope" verify --man=no "${copies[@]}" ||
    fail "systemd-analyze verify: $*"
  ok "systemd-analyze $scope verify: $*"
}

# Starts the packaged agent on a free port, asks its status page, stops it.
agent_status() { # <config> <http|https> [curl options]
  local config=$1 scheme=$2 log=$T/agent.log port="" pid body i
  shift 2
  : >"$log"
  "$R/usr/bin/kyso-agent" --config "$config" --port 0 --state-dir "$T/agent-state" \
    --no-system-modules >"$log" 2>&1 &
  pid=$!
  AGENT_PID=$pid
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's|^kyso-agent listening on [a-z]*://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" || true)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    kill "$pid" 2>/dev/null || true
    cat "$log" >&2
    fail "kyso-agent did not start with $config"
  fi
  body=$(curl -sS --max-time 5 "$@" "$scheme://127.0.0.1:$port/") || body="curl failed"
  kill "$pid"
  wait "$pid" || true
  AGENT_PID=""
  [[ $body == *'"kyso-agent"'* ]] || { cat "$log" >&2; fail "agent status over $scheme: $body"; }
}

# ---- kyso-tools --------------------------------------------------------------------------------
if has kyso-tools; then
  check_file 755 /usr/bin/kyso
  check_file 644 /usr/share/man/man1/kyso.1.gz
  check_file 644 /usr/share/doc/kyso-tools/copyright
  check_file 644 /usr/share/doc/kyso-tools/changelog.Debian.gz
  if [[ -e $R/usr/share/kyso/profiles/tokens.toml ]]; then
    check_file 644 /usr/share/kyso/profiles/tokens.toml
  else
    echo "note: no token table in kyso-tools (firmware-config/profiles/tokens.toml absent)"
  fi
  ok "kyso-tools: /usr/bin/kyso, man page, copyright, changelog"
fi

# ---- kyso-agent ------------------------------------------------------------------------------
if has kyso-agent; then
  check_file 755 /usr/bin/kyso-agent
  check_file 755 /usr/sbin/kyso-local-tls
  check_file 644 /usr/lib/systemd/user/kyso-agent.service
  check_file 644 /usr/lib/systemd/user/kyso-agent.socket
  check_file 644 /etc/kyso/kyso-agent.toml
  check_file 644 /usr/lib/kyso/kyso-formats-documents.so
  is_conffile kyso-agent /etc/kyso/kyso-agent.toml
  [[ -L $R/etc/systemd/user/default.target.wants/kyso-agent.service ]] ||
    fail "user service not enabled (no default.target.wants link)"
  [[ ! -e $R/etc/systemd/user/sockets.target.wants/kyso-agent.socket ]] ||
    fail "socket unit enabled while the agent does not take LISTEN_FDS"
  ok "kyso-agent: binary, XML/PDF module, kyso-local-tls, user units (service enabled for every user), kyso-agent.toml conffile"
  # The installed agent finds its module where it looks (lib/kyso beside bin/), checked the same
  # way by the installed `kyso doctor`, which must load it without the build tree's help.
  if has kyso-tools; then
    report=$(env -u KYSO_FORMATS_MODULE "$R/usr/bin/kyso" --no-system-modules doctor --json \
      --no-config --usb-inventory /dev/null 2>/dev/null || true)
    want=$R/usr/lib/kyso/kyso-formats-documents.so
    python3 - "$want" "$report" <<'PY' || fail "kyso doctor does not load the installed module: $report"
import json, sys
want, report = sys.argv[1], json.loads(sys.argv[2])
docs = [c for c in report["checks"] if c["check"] == "documents"]
assert len(docs) == 1 and docs[0]["status"] == "ok", docs
assert docs[0]["details"]["path"] == want, (docs[0]["details"]["path"], want)
PY
    ok "the installed kyso doctor loads /usr/lib/kyso/kyso-formats-documents.so (documents check ok)"
  fi
  verify_unit --user /usr/lib/systemd/user/kyso-agent.service /usr/lib/systemd/user/kyso-agent.socket
  # The browsers' policy follows the allow-list: watched, and nothing written for the empty one.
  [[ -L $R/etc/systemd/system/paths.target.wants/kyso-browser-policy.path ]] ||
    fail "kyso-browser-policy.path not enabled"
  [[ ! -e $R/etc/chromium/policies/managed/kyso-browser-policy.json ]] ||
    fail "browser policy written for an empty allow-list"
  verify_unit --system /lib/systemd/system/kyso-browser-policy.path \
    /lib/systemd/system/kyso-browser-policy.service
  [[ -L $R/etc/systemd/system/paths.target.wants/kyso-local-tls.path ]] ||
    fail "kyso-local-tls.path not enabled (new desktop users would get no wss certificate)"
  verify_unit --system /lib/systemd/system/kyso-local-tls.path /lib/systemd/system/kyso-local-tls.service

  TLS=$R/var/lib/kyso/tls
  check_file 644 /var/lib/kyso/tls/ca.crt
  # One certificate per desktop user (teacher 1000, principal 1001; root gets none), each key
  # its user's alone.
  for u in teacher:1000 principal:1001; do
    check_file 700 "/var/lib/kyso/tls/users/${u%:*}"
    check_file 644 "/var/lib/kyso/tls/users/${u%:*}/agent.crt"
    check_file 600 "/var/lib/kyso/tls/users/${u%:*}/agent.key"
    if [[ $EUID -eq 0 ]]; then
      [[ $(stat -c %u:%g "$TLS/users/${u%:*}/agent.key") == "${u#*:}:${u#*:}" ]] ||
        fail "${u%:*}'s agent key is owned by $(stat -c %u:%g "$TLS/users/${u%:*}/agent.key")"
    fi
    openssl verify -x509_strict -purpose sslserver -CAfile "$TLS/ca.crt" "$TLS/users/${u%:*}/agent.crt" \
      >/dev/null || fail "${u%:*}'s agent certificate does not verify against the local CA"
  done
  [[ ! -e $TLS/users/root ]] || fail "root was given an agent certificate"
  cmp -s "$TLS/ca.crt" "$R/usr/local/share/ca-certificates/kyso-local-ca.crt" ||
    fail "local CA not in the root's /usr/local/share/ca-certificates"
  [[ $(nick_trust "$CHROME") == "C,," ]] || fail "local CA not trusted in the teacher's Chrome db"
  [[ $(nick_trust "$FIREFOX") == "C,," ]] || fail "local CA not trusted in the teacher's Firefox profile"
  [[ $(nick_trust "$R/home/principal/.pki/nssdb") == "C,," ]] ||
    fail "no Chrome db with the CA made for a user who never started Chromium"
  KEYS=$(grep -rl "PRIVATE KEY" "$R" 2>/dev/null | sort || true)
  [[ $KEYS == "$(printf '%s\n' "$TLS/users/principal/agent.key" "$TLS/users/teacher/agent.key")" ]] ||
    fail "private keys other than the users' agent keys in the root: $KEYS"
  ok "postinst: local CA made, one agent certificate per desktop user (key 0600), CA key gone, trusted in system anchors and 3 NSS dbs"

  # The packaged agent starts with the packaged configuration, and with wss on the certificate
  # postinst made, which curl accepts trusting only the local CA.
  if [[ $("$R/usr/bin/kyso-agent" --help 2>&1) == *--config* ]]; then
    agent_status "$R/etc/kyso/kyso-agent.toml" http
    # As the teacher's agent would: %u is the agent's user, here the test's own.
    sed -e 's|^enabled = false|enabled = true|' -e "s|\"/var/lib/kyso/tls/|\"$TLS/|" \
      -e "s|/%u/|/teacher/|" "$R/etc/kyso/kyso-agent.toml" >"$T/kyso-agent-wss.toml"
    grep -q "^cert = \"$TLS/users/teacher/agent.crt\"" "$T/kyso-agent-wss.toml" ||
      fail "the shipped kyso-agent.toml does not name each user's certificate (users/%u/agent.crt)"
    agent_status "$T/kyso-agent-wss.toml" https --cacert "$TLS/ca.crt"
    ok "kyso-agent serves ws:// with the shipped kyso-agent.toml, and wss:// with the local CA's certificate"
  else
    echo "skip: $R/usr/bin/kyso-agent has no --config option, not started"
  fi

  # Reinstall (postinst configure <old version>): same CA, trust added to a new profile only.
  FP=$(openssl x509 -noout -fingerprint -sha256 -in "$TLS/ca.crt")
  FIREFOX2=$R/home/teacher/.mozilla/firefox/n3w1.second
  mkdir -p "$FIREFOX2"
  certutil -N --empty-password -d "sql:$FIREFOX2"
  "${DPKG[@]}" -i "$(deb_of kyso-agent)" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "reinstalling kyso-agent failed"; }
  [[ $(openssl x509 -noout -fingerprint -sha256 -in "$TLS/ca.crt") == "$FP" ]] ||
    fail "reinstall replaced a valid local CA"
  [[ $(nick_trust "$FIREFOX2") == "C,," ]] || fail "reinstall did not trust the CA in a new profile"
  ok "reinstall: same CA, trust added to a Firefox profile made since"
fi

# ---- kyso-appliance --------------------------------------------------------------------------
if has kyso-appliance; then
  check_file 755 /usr/sbin/kyso-appliance
  check_file 644 /lib/systemd/system/kyso-appliance.service
  check_file 640 /etc/kyso/kyso-appliance.toml
  is_conffile kyso-appliance /etc/kyso/kyso-appliance.toml
  if ((EUID == 0)); then
    entry=$(grep '^kyso-appliance:' "$R/etc/passwd") || fail "system user kyso-appliance not created"
    IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
    ((uid < 1000)) || fail "kyso-appliance is not a system user (uid $uid)"
    [[ $shell == /usr/sbin/nologin && $home == /var/lib/kyso-appliance ]] || fail "user entry: $entry"
    [[ $(stat -c %g "$R/etc/kyso/kyso-appliance.toml") == "$gid" ]] ||
      fail "kyso-appliance.toml not group kyso-appliance"
  else
    uid="(not root: user creation not checked)" gid=""
  fi
  [[ ! -e $R/etc/systemd/system/multi-user.target.wants/kyso-appliance.service ]] ||
    fail "kyso-appliance.service enabled before its HSM is configured"
  unit=$R/lib/systemd/system/kyso-appliance.service
  for directive in "ProtectSystem=strict" "NoNewPrivileges=yes" "PrivateTmp=yes" "ProtectHome=yes" \
                   "CapabilityBoundingSet=" "RestrictAddressFamilies=" "StateDirectory=kyso-appliance" \
                   "User=kyso-appliance"; do
    grep -q "^$directive" "$unit" || fail "kyso-appliance.service lacks $directive"
  done
  grep -q '^ExecStart=/usr/sbin/kyso-appliance --config /etc/kyso/kyso-appliance.toml$' "$unit" ||
    fail "kyso-appliance.service does not start on the TOML conffile"
  check_file 644 /usr/share/doc/kyso-appliance/examples/kyso-appliance.toml
  # The shipped conffile is the TOML profile the binary reads: all commented out until IT fills
  # it in, so the installed binary refuses it, naming the first missing section.
  out=$("$R/usr/sbin/kyso-appliance" check-config --config "$R/etc/kyso/kyso-appliance.toml" 2>&1) &&
    fail "kyso-appliance check-config accepted the unconfigured default"
  [[ $out == *"kyso-appliance.toml:1:1: server: section [server] is required"* ]] ||
    fail "check-config on the default config: $out"
  ok "kyso-appliance: binary, hardened unit (not enabled until configured), system user $uid${gid:+:$gid}, kyso-appliance.toml 0640 conffile (TOML, refused until configured)"
  verify_unit --system /lib/systemd/system/kyso-appliance.service
  if command -v systemd-analyze >/dev/null; then
    # Exposure is 0-10; 2.0 or less is systemd's "OK" band.
    systemd-analyze security --offline=yes --threshold=20 "$T/units/kyso-appliance.service" |
      tail -1 || fail "kyso-appliance.service exposure above 2.0"
  fi
fi

# ---- kyso-verifyd ----------------------------------------------------------------------------
if has kyso-verifyd; then
  check_file 755 /usr/sbin/kyso-verifyd
  check_file 644 /lib/systemd/system/kyso-verifyd.service
  check_file 640 /etc/kyso/kyso-verifyd.toml
  is_conffile kyso-verifyd /etc/kyso/kyso-verifyd.toml
  check_file 644 /usr/share/doc/kyso-verifyd/examples/kyso-verifyd.toml
  check_file 644 /usr/share/doc/kyso-verifyd/validation-report.json
  if ((EUID == 0)); then
    entry=$(grep '^kyso-verifyd:' "$R/etc/passwd") || fail "system user kyso-verifyd not created"
    IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
    ((uid < 1000)) || fail "kyso-verifyd is not a system user (uid $uid)"
    [[ $shell == /usr/sbin/nologin ]] || fail "user entry: $entry"
  fi
  [[ ! -e $R/etc/systemd/system/multi-user.target.wants/kyso-verifyd.service ]] ||
    fail "kyso-verifyd.service enabled before its anchors are configured"
  unit=$R/lib/systemd/system/kyso-verifyd.service
  # Stateless: a private /tmp and no state directory.
  for directive in "ProtectSystem=strict" "NoNewPrivileges=yes" "PrivateTmp=yes" "ProtectHome=yes" \
                   "CapabilityBoundingSet=" "RestrictAddressFamilies=" "User=kyso-verifyd" \
                   "MemoryMax="; do
    grep -q "^$directive" "$unit" || fail "kyso-verifyd.service lacks $directive"
  done
  ! grep -q '^StateDirectory=' "$unit" || fail "kyso-verifyd.service has a state directory"
  out=$("$R/usr/sbin/kyso-verifyd" check-config --config "$R/etc/kyso/kyso-verifyd.toml" 2>&1) &&
    fail "kyso-verifyd check-config accepted the unconfigured default"
  [[ $out == *"kyso-verifyd.toml:1:1: server: section [server] is required"* ]] ||
    fail "kyso-verifyd check-config on the default config: $out"
  ok "kyso-verifyd: binary, hardened stateless unit (not enabled), kyso-verifyd.toml 0640 conffile"
  verify_unit --system /lib/systemd/system/kyso-verifyd.service
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze security --offline=yes --threshold=20 "$T/units/kyso-verifyd.service" |
      tail -1 || fail "kyso-verifyd.service exposure above 2.0"
  fi
fi

# ---- purge: every trust taken back, nothing left -------------------------------------------
"${DPKG[@]}" -P "${PKGS[@]}" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -P in the scratch root failed"; }
if has kyso-agent; then
  for db in "$CHROME" "$FIREFOX" "$FIREFOX2" "$R/home/principal/.pki/nssdb"; do
    [[ -z $(nick_trust "$db") ]] || fail "local CA still trusted in $db after purge"
  done
  [[ ! -e $R/usr/local/share/ca-certificates/kyso-local-ca.crt ]] || fail "local CA still in system anchors"
  [[ ! -e $R/var/lib/kyso ]] || fail "/var/lib/kyso left after purge"
  [[ ! -e $R/etc/systemd/user/default.target.wants/kyso-agent.service ]] || fail "user unit link left"
  [[ ! -e $R/etc/systemd/system/paths.target.wants/kyso-browser-policy.path ]] || fail "path unit link left"
  [[ ! -e $R/etc/systemd/system/paths.target.wants/kyso-local-tls.path ]] || fail "kyso-local-tls.path link left"
fi
[[ ! -e $R/etc/kyso ]] || fail "/etc/kyso left after purge: $(ls "$R/etc/kyso")"
ok "purge: trust removed from every NSS db and the system anchors, no files left"

host_state >"$T/host.after"
diff -u "$T/host.before" "$T/host.after" || fail "the host changed during the test"
ok "host untouched"
echo PASS
