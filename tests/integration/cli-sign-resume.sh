#!/usr/bin/env bash
# `kyso sign` on a folder of 200 PDFs (and 10 XML transcripts below it) as the principal,
# interrupted half way with SIGINT and run again: every document is signed exactly once.
#  - the token delivered exactly 210 signatures over both runs (the fault module's sign log,
#    KYSO_FAULT_SIGN_LOG, counts them in the kyso processes), none in a third run;
#  - each output has exactly one signature, the principal's, valid by pdfsig (poppler), and
#    qpdf --check passes; each XML's one Signature verifies with xmlsec1;
#  - a file in the output folder that is not this document signed by this certificate is not
#    overwritten: OUTPUT_EXISTS, exit status 2, and the token is not asked.
# Environment (ctest, tests/CMakeLists.txt): KYSO_TEST_DIR (the demo token), KYSO_CLI,
# KYSO_FAULT_MODULE, SOFTHSM2_CONF.
set -euo pipefail
: "${KYSO_TEST_DIR:?}" "${KYSO_CLI:?}" "${KYSO_FAULT_MODULE:?}" "${SOFTHSM2_CONF:?}"

work="$(mktemp -d)"
kyso_pid=""
cleanup() {
  [[ -n "$kyso_pid" ]] && kill "$kyso_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

manifest="$KYSO_TEST_DIR/manifest.json"
field() { python3 -c "import json,sys; d=json.load(open('$manifest')); print(eval(sys.argv[1]))" "$1"; }
root="$(field "d['pki']['root']")"
sub="$(field "d['pki']['sub']")"
pin_file="$(field "d['pin_file']")"
principal_cn="$(field "[c['cn'] for c in d['credentials'] if c['name']=='principal'][0]")"

# 200 one-page PDFs (classic cross-reference table) and 10 transcripts in the demo's XML layout.
python3 - "$work/in" <<'EOF'
import os, sys
out = sys.argv[1]
os.makedirs(os.path.join(out, "xml"))
for n in range(1, 201):
    text = f"BT /F1 18 Tf 72 720 Td (Hoc ba so - hoc sinh {n:03d}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    pdf = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        pdf += b"%010d 00000 n \n" % off
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    with open(os.path.join(out, f"hb-{n:03d}.pdf"), "wb") as f:
        f.write(pdf)
for n in range(1, 11):
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<HocBa Id="hb-{n:02d}" MaTraCuu="00000000-0000-4000-8000-0000000000{n:02d}">
  <DuLieuHocBa Id="hb-{n:02d}-dl">
    <HocSinh><HoTen>Nguyễn Văn An {n}</HoTen><SoDinhDanh>0011850123{n:02d}</SoDinhDanh></HocSinh>
    <KetQua><DiemTrungBinh>8.{n % 10}</DiemTrungBinh><HocLuc>Giỏi</HocLuc></KetQua>
  </DuLieuHocBa>
</HocBa>
"""
    with open(os.path.join(out, "xml", f"hb-{n:02d}.xml"), "w", encoding="utf-8") as f:
        f.write(xml)
EOF
total=210

# SoftHSM2's file store is not safe for several processes at once, and ctest runs other tests on
# the run's token meanwhile: sign on a private copy (same keys, same certificates).
cp -r "$KYSO_TEST_DIR/tokens" "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"

export KYSO_FAULT_SIGN_LOG="$work/signs.log"
# 25 ms per signature on one chip: the first run takes over 5 s, long enough to interrupt.
export KYSO_FAULT_PRESET="sign_delay_us=25000,sign_serial=1"
kyso_sign=("$KYSO_CLI" --no-system-modules --module "$KYSO_FAULT_MODULE" --lang en sign "$work/in"
  --role principal --out "$work/out" --pin-file "$pin_file" --trust "$root" --no-revocation)
sign() { "${kyso_sign[@]}" "$@"; }
signs() { if [[ -f "$KYSO_FAULT_SIGN_LOG" ]]; then wc -l <"$KYSO_FAULT_SIGN_LOG"; else echo 0; fi; }

# Run 1, interrupted once about half of the documents are signed.
# (kyso itself in the background, not a subshell around it: the SIGINT must reach kyso)
"${kyso_sign[@]}" >"$work/run1.out" 2>"$work/run1.err" &
kyso_pid=$!
for _ in $(seq 1 600); do
  (($(signs) >= total / 2)) && break
  kill -0 "$kyso_pid" 2>/dev/null || break
  sleep 0.05
done
echo "run 1: SIGINT after $(signs) token signatures"
kill -INT "$kyso_pid"
rc=0
wait "$kyso_pid" || rc=$?
kyso_pid=""
[[ $rc -eq 130 ]] || { cat "$work/run1.out" "$work/run1.err" >&2; fail "run 1 exit status $rc, want 130"; }
grep -q "Stopped on request" "$work/run1.out" || fail "run 1 does not say it was stopped"
done1=$(grep -c '^signed ' "$work/run1.out" || true)
outputs1=$(find "$work/out" -name '*.pdf' -o -name '*.xml' | wc -l)
echo "run 1: interrupted after $done1 signed, $outputs1 outputs, $(signs) token signatures"
((done1 > 0 && done1 < total)) || fail "run 1 signed $done1 of $total: not interrupted half way"
[[ $outputs1 -eq $done1 ]] || fail "run 1: $outputs1 outputs for $done1 documents signed"
[[ $(signs) -eq $done1 ]] || fail "run 1: the token made $(signs) signatures for $done1 outputs"
# No output of the interrupted run is half written: each one is complete and verifies.
while read -r f; do
  qpdf --check "$f" >/dev/null 2>&1 || fail "interrupted run left a broken $f"
done < <(find "$work/out" -name '*.pdf')

# Run 2 resumes: only what is missing is signed.
rc=0
sign >"$work/run2.out" 2>"$work/run2.err" || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/run2.out" "$work/run2.err" >&2; fail "run 2 exit status $rc"; }
done2=$(grep -c '^signed ' "$work/run2.out" || true)
grep -q "$done1 document(s) signed before are skipped" "$work/run2.out" ||
  fail "run 2 does not skip the $done1 documents signed before"
echo "run 2: $done2 signed; token signatures over both runs: $(signs)"
[[ $((done1 + done2)) -eq $total ]] || fail "signed $done1 + $done2, want $total"
[[ $(signs) -eq $total ]] || fail "the token made $(signs) signatures, want $total"
[[ $(sort -u "$KYSO_FAULT_SIGN_LOG" | wc -l) -eq 2 ]] || fail "signatures not from two processes"

# Every output: exactly one signature, the principal's, valid.
for n in $(seq -f '%03g' 1 200); do
  f="$work/out/hb-$n.pdf"
  [[ -f "$f" ]] || fail "no output $f"
  report="$(pdfsig "$f" 2>&1 || true)"
  [[ $(grep -c '^Signature #' <<<"$report") -eq 1 ]] || fail "$f: not exactly one signature"
  grep -q "Signature Validation: Signature is Valid" <<<"$report" || fail "$f: pdfsig: $report"
  grep -qF "Signer Certificate Common Name: $principal_cn" <<<"$report" ||
    fail "$f: not signed by $principal_cn"
  qpdf --check "$f" >/dev/null 2>&1 || fail "$f: qpdf --check"
done
for n in $(seq -f '%02g' 1 10); do
  f="$work/out/xml/hb-$n.xml"
  [[ $(grep -o '<Signature[ >]' "$f" | wc -l) -eq 1 ]] || fail "$f: not exactly one Signature"
  grep -q "<ChuKyHieuTruong>" "$f" || fail "$f: the Signature is not in ChuKyHieuTruong"
  xmlsec1 --verify --trusted-pem "$root" --untrusted-pem "$sub" --id-attr:Id HocBa \
    --id-attr:Id DuLieuHocBa "$f" >"$work/xmlsec.out" 2>&1 || fail "$f: xmlsec1: $(cat "$work/xmlsec.out")"
done

# Run 3: nothing left to sign, the token is not asked.
rc=0
sign --json >"$work/run3.json" 2>"$work/run3.err" || rc=$?
[[ $rc -eq 0 ]] || fail "run 3 exit status $rc"
python3 - "$work/run3.json" "$total" <<'EOF' || fail "run 3 summary"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["signed"] == [] and j["failed"] == [] and j["notDone"] == [], j
assert len(j["skipped"]) == int(sys.argv[2]) and not j["interrupted"], j
EOF
[[ $(signs) -eq $total ]] || fail "run 3 signed again"

# A foreign file where an output goes (here the unsigned input) is never overwritten.
cp "$work/in/hb-007.pdf" "$work/out/hb-007.pdf"
rc=0
sign --json >"$work/run4.json" 2>"$work/run4.err" || rc=$?
[[ $rc -eq 2 ]] || fail "run 4 exit status $rc, want 2"
python3 - "$work/run4.json" <<'EOF' || fail "run 4 summary"
import json, sys
j = json.load(open(sys.argv[1]))
assert [f["error"]["code"] for f in j["failed"]] == ["OUTPUT_EXISTS"], j
assert j["failed"][0]["file"].endswith("hb-007.pdf") and j["signed"] == [], j
EOF
cmp -s "$work/in/hb-007.pdf" "$work/out/hb-007.pdf" || fail "run 4 overwrote the foreign file"
[[ $(signs) -eq $total ]] || fail "run 4 signed"
echo "OK: $total documents signed exactly once over an interrupted run and its resumption"
