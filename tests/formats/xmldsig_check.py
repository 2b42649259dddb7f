#!/usr/bin/python3
"""Independent check of one enveloped XML-DSig signature, for what xmlsec1 1.2 cannot verify
(RSASSA-PSS, RFC 6931 sha*-rsa-MGF1): lxml's inclusive C14N for the references and SignedInfo,
openssl for the signature value and the certificate chain.

usage: xmldsig_check.py FILE SIGNATURE_ID CA_FILE UNTRUSTED_FILE
exit 0 when every reference digest, the signature value and the chain check out."""
import base64, hashlib, os, subprocess, sys, tempfile
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS}
HASHES = {"http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
          "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
          "http://www.w3.org/2001/04/xmlenc#sha512": "sha512"}
SIGS = {"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("sha256", "pkcs1"),
        "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1": ("sha256", "pss"),
        "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1": ("sha384", "pss"),
        "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1": ("sha512", "pss")}


def c14n(el):
    """Inclusive C14N of a subtree: re-rooted in a document of its own with every in-scope
    namespace declared on the apex (lxml's own subtree C14N mishandles inherited default
    namespaces below the apex)."""
    root = etree.fromstring(etree.tostring(el))
    nsmap = dict(root.nsmap)
    nsmap.update(el.nsmap)
    apex = etree.Element(root.tag, nsmap=nsmap, attrib=dict(root.attrib))
    apex.text = root.text
    apex.extend(list(root))
    return etree.tostring(etree.ElementTree(apex), method="c14n", exclusive=False,
                          with_comments=False)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    path, sig_id, ca, untrusted = sys.argv[1:5]
    tree = etree.parse(path)
    found = tree.xpath("//*[@Id=$i]", i=sig_id)
    if len(found) != 1:
        fail("signature %s not found once" % sig_id)
    sig = found[0]
    si = sig.find("ds:SignedInfo", NS)
    for ref in si.findall("ds:Reference", NS):
        uri = ref.get("URI")
        targets = tree.xpath("//*[@Id=$i]", i=uri[1:])
        if len(targets) != 1:
            fail("reference %s not found once" % uri)
        target = targets[0]
        transforms = [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", NS)]
        removed = None
        if DS + "enveloped-signature" in transforms:
            parent = sig.getparent()
            index = parent.index(sig)
            tail = sig.tail
            parent.remove(sig)
            removed = (parent, index, tail)
        data = c14n(target)
        if removed:
            parent, index, tail = removed
            parent.insert(index, sig)
            sig.tail = tail
        h = HASHES[ref.find("ds:DigestMethod", NS).get("Algorithm")]
        got = base64.b64encode(hashlib.new(h, data).digest()).decode()
        if got != ref.findtext("ds:DigestValue", namespaces=NS).strip():
            fail("digest mismatch for %s" % uri)
    md, pad = SIGS[si.find("ds:SignatureMethod", NS).get("Algorithm")]
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "si"), "wb").write(c14n(si))
        value = base64.b64decode("".join(sig.findtext("ds:SignatureValue", namespaces=NS).split()))
        open(os.path.join(d, "sig"), "wb").write(value)
        der = base64.b64decode("".join(sig.findtext(".//ds:X509Certificate", namespaces=NS).split()))
        open(os.path.join(d, "cert.der"), "wb").write(der)
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", os.path.join(d, "cert.der"),
                        "-out", os.path.join(d, "cert.pem")], check=True)
        subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout", "-pubkey",
                        "-out", os.path.join(d, "pub.pem")], check=True)
        cmd = ["openssl", "dgst", "-" + md, "-verify", os.path.join(d, "pub.pem"), "-signature",
               os.path.join(d, "sig")]
        if pad == "pss":
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest",
                    "-sigopt", "rsa_mgf1_md:" + md]
        if subprocess.run(cmd + [os.path.join(d, "si")], capture_output=True).returncode != 0:
            fail("signature value does not verify")
        if subprocess.run(["openssl", "verify", "-CAfile", ca, "-untrusted", untrusted,
                           os.path.join(d, "cert.pem")], capture_output=True).returncode != 0:
            fail("certificate chain does not verify")
    print("OK")


main()
