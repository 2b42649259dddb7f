// Real signatures for the fake agent: three throw-away keys and self-signed certificates made with
// the openssl CLI (RSA PKCS#1 v1.5, RSA-PSS, ECDSA P-256), signing digests with `openssl pkeyutl`
// as a token signs a hash. Lets the page's own verification be tested without the C++ agent.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const KEYS = {
  teacher: { algorithm: 'rsa-sha256', gen: ['-newkey', 'rsa:2048'], opts: ['-pkeyopt', 'digest:sha256'],
    subj: '/C=VN/ST=HÀ NỘI/O=Trường THPT Chu Văn An/CN=Nguyễn Thị Ánh', kind: 'person', title: 'Giáo viên chủ nhiệm' },
  principal: { algorithm: 'rsa-pss-sha256', gen: ['-newkey', 'rsa:2048'],
    opts: ['-pkeyopt', 'digest:sha256', '-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:digest'],
    subj: '/C=VN/ST=HÀ NỘI/O=Trường THPT Chu Văn An/title=Hiệu trưởng/CN=Trần Văn Bình', kind: 'person', title: 'Hiệu trưởng' },
  seal: { algorithm: 'ecdsa-sha256', gen: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], opts: [],
    subj: '/C=VN/ST=HÀ NỘI/O=Trường THPT Chu Văn An/CN=Trường THPT Chu Văn An', kind: 'organization' },
};

export function makeFakeSigner() {
  const dir = mkdtempSync(join(tmpdir(), 'kyso-fake-signer-'));
  const creds = {};
  for (const [role, k] of Object.entries(KEYS)) {
    const key = join(dir, `${role}.key`);
    const crt = join(dir, `${role}.der`);
    execFileSync('openssl', ['req', '-x509', '-utf8', ...k.gen, '-nodes', '-keyout', key, '-subj', k.subj,
      '-days', '30', '-outform', 'DER', '-out', crt], { stdio: 'ignore' });
    const der = readFileSync(crt).toString('base64');
    const cn = k.subj.split('/CN=')[1];
    creds[role] = {
      key,
      algorithm: k.algorithm,
      opts: k.opts,
      credential: {
        id: Buffer.from(role.padEnd(32, '-')).toString('hex'),
        certificate: { subject: k.subj, issuer: 'C=VN, O=Kyso Fake, CN=Kyso Fake CA', commonName: cn,
          organization: 'Trường THPT Chu Văn An', title: k.title, kind: k.kind,
          notBefore: new Date().toISOString(), notAfter: new Date(Date.now() + 30 * 864e5).toISOString(),
          validNow: true, keyType: role === 'seal' ? 'EC' : 'RSA' },
        certificateDer: der, chain: [], source: { kind: 'token', name: 'Kyso Fake' },
        algorithms: [k.algorithm], roles: [role], suggestedRole: role,
      },
    };
  }
  let n = 0;
  return {
    creds,
    /** Signs a base64 SHA-256 digest as `role`; returns the base64 signature. */
    sign(role, hashB64) {
      const c = creds[role];
      const input = join(dir, `in-${n++}`);
      writeFileSync(input, Buffer.from(hashB64, 'base64'));
      return execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', c.key, '-in', input, ...c.opts]).toString('base64');
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
