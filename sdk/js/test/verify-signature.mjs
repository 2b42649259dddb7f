// Checks a signature the agent returned, independently of the agent: OpenSSL through Node's
// crypto, over the data the page hashed, against the certificate the agent sent.
import assert from 'node:assert/strict';
import { constants, verify, X509Certificate } from 'node:crypto';

/** Verifies a signature over `data` as the agent's algorithm name says. */
export function verifySignature(algorithm, data, certificateB64, signatureB64) {
  const m = /^(rsa|rsa-pss|ecdsa)-(sha256|sha384|sha512)$/.exec(algorithm);
  assert.ok(m, `unknown algorithm ${algorithm}`);
  const cert = new X509Certificate(Buffer.from(certificateB64, 'base64'));
  const key = { key: cert.publicKey };
  if (m[1] === 'rsa') key.padding = constants.RSA_PKCS1_PADDING;
  if (m[1] === 'rsa-pss') {
    key.padding = constants.RSA_PKCS1_PSS_PADDING;
    key.saltLength = constants.RSA_PSS_SALTLEN_AUTO;
  }
  if (m[1] === 'ecdsa') key.dsaEncoding = 'der';
  return verify(m[2], data, key, Buffer.from(signatureB64, 'base64'));
}
