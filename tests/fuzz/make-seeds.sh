#!/usr/bin/env bash
# Makes the binary seeds of tests/fuzz/corpus/ (certificates with Vietnamese subjects, a CRL, an
# OCSP answer, a TSA reply, CMS, XML-DSig and PAdES documents signed by a throw-away test CA) with
# openssl, xmlsec1 and python3. Run by hand when the seeds should change; its output is committed
# (the seeds are small), so CI never runs it. The hand-written seeds (JSON, TOML, forms) live in
# the corpus directories directly.
#   tests/fuzz/make-seeds.sh [CORPUS_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/corpus}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
cd "$W"
export TZ=UTC

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA, a teacher (CCCD), a principal (title Hiệu trưởng), a school seal (MST), an OCSP
# responder and a TSA.
cat > ca.cnf <<'CNF'
[req]
distinguished_name = dn
string_mask = utf8only
utf8 = yes
[dn]
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection, 1.3.6.1.4.1.311.10.3.12
authorityInfoAccess = OCSP;URI:http://127.0.0.1:9/ocsp, caIssuers;URI:http://127.0.0.1:9/ca.cer
crlDistributionPoints = URI:http://127.0.0.1:9/ca.crl
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:gv.an@thpt.example.edu.vn
[ocsp_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
1.3.6.1.5.5.7.48.1.5 = ASN1:NULL
[tsa_ext]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
[ca]
default_ca = myca
[myca]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 30
CNF
touch index.txt; echo 01 > crlnumber
key ca.key
openssl req -new -x509 -config ca.cnf -extensions ca_ext -key ca.key -days 3650 -out ca.pem \
  -subj "/C=VN/O=Bộ Giáo dục và Đào tạo/CN=Kyso Fuzz Test CA" -utf8
n=1
issue() {  # name subject extensions
  key "$1.key"
  openssl req -new -config ca.cnf -key "$1.key" -subj "$2" -utf8 -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial $((n++)) -days 3650 \
    -extfile ca.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
  openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}
issue teacher "/C=VN/ST=HÀ NỘI/L=Hà Nội/O=Trường THPT Kim Liên/OU=Tổ Toán/title=Giáo viên chủ nhiệm/CN=Nguyễn Văn An/UID=CCCD:001090012345/emailAddress=gv.an@thpt.example.edu.vn" leaf_ext
issue principal "/C=VN/ST=HÀ NỘI/O=Trường THPT Kim Liên/title=Hiệu trưởng/CN=Trần Thị Bình/UID=CMND:012345678/UID=MST:0101234567" leaf_ext
issue seal "/C=VN/ST=HÀ NỘI/O=Trường THPT Kim Liên/CN=Trường THPT Kim Liên/UID=MST:0101234567-001" leaf_ext
issue ocsp "/C=VN/O=Kyso Fuzz/CN=OCSP responder" ocsp_ext
issue tsa "/C=VN/O=Kyso Fuzz/CN=Kyso Fuzz TSA" tsa_ext

mkdir -p "$OUT"/{certificate,crl,ocsp_response,tsa_response,verify,pdf_scan,xml_c14n}
for c in ca teacher principal seal ocsp tsa; do
  openssl x509 -in $c.pem -outform DER -out "$OUT/certificate/$c.der"
done
cp teacher.pem "$OUT/certificate/teacher.pem"

# CRL: the principal revoked.
openssl ca -config ca.cnf -revoke principal.pem -keyfile ca.key -cert ca.pem 2>/dev/null
openssl ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out ca.crl 2>/dev/null
openssl crl -in ca.crl -outform DER -out "$OUT/crl/ca.der"
cp ca.crl "$OUT/crl/ca.pem"

# OCSP: good (teacher) and revoked (principal), with nonces, signed by the delegated responder
# (its certificate in the answer).
for who in teacher principal; do
  openssl ocsp -issuer ca.pem -cert $who.pem -reqout $who.req 2>/dev/null
  openssl ocsp -index index.txt -CA ca.pem -rsigner ocsp.pem -rkey ocsp.key -reqin $who.req \
    -respout "$OUT/ocsp_response/$who.der" -ndays 1 2>/dev/null
done
openssl ocsp -index index.txt -CA ca.pem -rsigner ca.pem -rkey ca.key -reqin teacher.req \
  -respout "$OUT/ocsp_response/by-ca-no-certs.der" -resp_no_certs -ndays 1 2>/dev/null

# TSA replies: granted (with nonce and the TSA's certificate) and one without a certificate.
cat > ts.cnf <<'CNF'
[tsa]
default_tsa = tsa_config1
[tsa_config1]
serial = tsaserial
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_alg = sha256
CNF
echo 01 > tsaserial
printf 'Học bạ lớp 12A1' > data.txt
openssl ts -query -data data.txt -sha256 -cert -out q.tsq 2>/dev/null
openssl ts -reply -config ts.cnf -queryfile q.tsq -inkey tsa.key -signer tsa.pem -chain ca.pem \
  -out "$OUT/tsa_response/granted.tsr" 2>/dev/null
openssl ts -query -data data.txt -sha512 -no_nonce -out q2.tsq 2>/dev/null
openssl ts -reply -config ts.cnf -queryfile q2.tsq -inkey tsa.key -signer tsa.pem \
  -out "$OUT/tsa_response/no-nonce-sha512.tsr" 2>/dev/null

# CMS: detached and attached CAdES-like signatures, DER and PEM.
openssl cms -sign -binary -in data.txt -signer teacher.pem -inkey teacher.key -certfile ca.pem \
  -outform DER -out "$OUT/verify/detached.p7s" -md sha256
openssl cms -sign -binary -nodetach -in data.txt -signer seal.pem -inkey seal.key \
  -outform DER -out "$OUT/verify/attached.p7s" -md sha384
openssl cms -sign -binary -nodetach -in data.txt -signer principal.pem -inkey principal.key \
  -outform PEM -out "$OUT/verify/attached.pem"

# XML-DSig: an enveloped signature over a transcript element, as the Vietnamese profile.
cat > tmpl.xml <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<HocBa xmlns:hb="urn:hocba" Id="hb-07"><ThongTin Id="hb-07-dl"><HoTen>Nguyễn Văn An</HoTen><Lop>12A1</Lop><Diem mon="Toán">9.5</Diem><!-- ghi chú --></ThongTin><ChuKyGVCN><Signature xmlns="http://www.w3.org/2000/09/xmldsig#" Id="hb-07-sig"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/><SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><Reference URI="#hb-07-dl"><Transforms><Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature></ChuKyGVCN></HocBa>
XML
xmlsec1 --sign --privkey-pem teacher.key,teacher.pem --id-attr:Id ThongTin \
  --output "$OUT/verify/transcript.xml" tmpl.xml 2>/dev/null
cp "$OUT/verify/transcript.xml" "$OUT/xml_c14n/transcript.xml"

# PAdES: a one-page PDF signed by incremental update (adbe.pkcs7.detached over the ByteRange),
# and the same PDF unsigned.
python3 - "$OUT" <<'PY'
import subprocess, sys
out = sys.argv[1]
objs = [b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] /SigFlags 3 >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Annots [5 0 R] >>",
        None, None, None]
stream = b"BT /F1 12 Tf 72 770 Td (Hoc ba 12A1) Tj ET"
objs[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
def build(sig):
    body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offs = []
    os_ = list(objs[:4])
    if sig is None:
        os_[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
        os_[2] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>"
    else:
        os_ += [b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (HieuTruong) /Rect [0 0 0 0] /P 3 0 R /V 6 0 R /F 132 >>",
                b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached /Name (Tran Thi Binh) /M (D:20261202090000Z) /ByteRange " + sig + b" >>"]
    for i, o in enumerate(os_, 1):
        offs.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    x = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(os_) + 1)
    for o in offs: body += b"%010d 00000 n \n" % o
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(os_) + 1, x)
    return body
open(out + "/pdf_scan/plain.pdf", "wb").write(build(None))
open(out + "/verify/plain.pdf", "wb").write(build(None))
hexlen = 4096
placeholder = b"[0000000000 0000000000 0000000000 0000000000] /Contents <" + b"0" * hexlen + b">"
pdf = build(placeholder)
start = pdf.index(b"/Contents <") + len(b"/Contents ")
end = start + hexlen + 2
br = b"[%010d %010d %010d %010d]" % (0, start, end, len(pdf) - end)
pdf = pdf.replace(b"[0000000000 0000000000 0000000000 0000000000]", br)
open("tbs.bin", "wb").write(pdf[:start] + pdf[end:])
cms = subprocess.run(["openssl", "cms", "-sign", "-binary", "-in", "tbs.bin", "-signer", "principal.pem",
                      "-inkey", "principal.key", "-certfile", "ca.pem", "-outform", "DER", "-md", "sha256"],
                     check=True, capture_output=True).stdout
h = cms.hex().encode()
assert len(h) <= hexlen
pdf = pdf[:start + 1] + h + b"0" * (hexlen - len(h)) + pdf[end - 1:]
open(out + "/verify/signed.pdf", "wb").write(pdf)
open(out + "/pdf_scan/signed.pdf", "wb").write(pdf)
PY
echo "seeds written under $OUT"
