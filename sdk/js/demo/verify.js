// Checks a returned signature in the page with WebCrypto, over the transcript bytes themselves:
// the receiving system's view ("is this signature over this transcript, by this certificate?").
// Only what the demo needs: the certificate's public key (a few lines of DER) and the algorithms
// the agent answers with. Chain, validity and revocation are the agent's and the verifier's job.

const HASH = { sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };
const CURVES = [
  // DER of the namedCurve OIDs inside an EC SubjectPublicKeyInfo
  ['P-256', [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]],
  ['P-384', [0x2b, 0x81, 0x04, 0x00, 0x22]],
  ['P-521', [0x2b, 0x81, 0x04, 0x00, 0x23]],
];

/** One DER element at `i`: tag, where its content starts and where it ends. */
function tlv(b, i) {
  const tag = b[i];
  let len = b[i + 1];
  let start = i + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[start++];
  }
  if (start + len > b.length) throw new Error('truncated DER');
  return { tag, head: i, start, end: start + len };
}

function children(b, parent) {
  const out = [];
  for (let i = parent.start; i < parent.end; ) {
    const c = tlv(b, i);
    out.push(c);
    i = c.end;
  }
  return out;
}

/** The SubjectPublicKeyInfo of an X.509 certificate (DER). */
export function spkiOf(certDer) {
  const cert = tlv(certDer, 0);
  const tbs = tlv(certDer, cert.start);
  const fields = children(certDer, tbs);
  const first = fields[0].tag === 0xa0 ? 1 : 0; // [0] version is optional
  const spki = fields[first + 5]; // serial, signature, issuer, validity, subject, spki
  return certDer.slice(spki.head, spki.end);
}

function contains(hay, needle) {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return true;
  }
  return false;
}

/** ECDSA-Sig-Value (DER) to WebCrypto's r||s, each padded to the curve's size. */
function ecdsaRaw(der, size) {
  const seq = tlv(der, 0);
  const [r, s] = children(der, seq).map((x) => {
    let v = der.slice(x.start, x.end);
    while (v.length > size && v[0] === 0) v = v.slice(1);
    const out = new Uint8Array(size);
    out.set(v, size - v.length);
    return out;
  });
  const raw = new Uint8Array(2 * size);
  raw.set(r, 0);
  raw.set(s, size);
  return raw;
}

const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/**
 * True when `signature` (base64) by `certificate` (base64 DER) is valid over `data` with the
 * agent's algorithm name (rsa-sha256, rsa-pss-sha256, ecdsa-sha256, …); false when invalid;
 * null when this page cannot check that algorithm.
 */
export async function verifySignature({ algorithm, certificate, signature }, data) {
  const m = /^(rsa|rsa-pss|ecdsa)-(sha256|sha384|sha512)$/.exec(algorithm ?? '');
  if (!m) return null;
  const hash = HASH[m[2]];
  const spki = spkiOf(fromB64(certificate));
  let sig = fromB64(signature);
  let importAlg;
  let verifyAlg;
  if (m[1] === 'ecdsa') {
    const curve = CURVES.find(([, oid]) => contains(spki, oid));
    if (!curve) return null;
    importAlg = { name: 'ECDSA', namedCurve: curve[0] };
    verifyAlg = { name: 'ECDSA', hash };
    const size = { 'P-256': 32, 'P-384': 48, 'P-521': 66 }[curve[0]];
    if (sig[0] === 0x30) sig = ecdsaRaw(sig, size);
  } else if (m[1] === 'rsa-pss') {
    importAlg = { name: 'RSA-PSS', hash };
    verifyAlg = { name: 'RSA-PSS', saltLength: { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[hash] };
  } else {
    importAlg = { name: 'RSASSA-PKCS1-v1_5', hash };
    verifyAlg = { name: 'RSASSA-PKCS1-v1_5' };
  }
  const key = await crypto.subtle.importKey('spki', spki, importAlg, false, ['verify']);
  return crypto.subtle.verify(verifyAlg, key, sig, data);
}
