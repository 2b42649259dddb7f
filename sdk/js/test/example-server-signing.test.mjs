// examples/server-signing: the example transcript server with the real `kyso` CLI on the demo
// token. The test plays the page and the agent: it posts the principal's certificate chain, gets
// the class's digests, signs them on the token through the same token layer the agent uses
// (`kyso sign-hash`), posts the signatures back and downloads the signed PDFs, which pdfsig and
// qpdf verify. A signature posted for the wrong document is refused (SIGNATURE_MISMATCH) and
// nothing is written for it. The page's script is checked for syntax.
//
// Env: KYSO_CLI (the kyso binary), KYSO_TEST_DIR (tests/pki/make-demo-token.sh's output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startExampleServer } from '../examples/server-signing/server.mjs';
import { students } from '../demo/class-data.js';
import { transcriptPdf } from '../demo/documents.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const example = resolve(here, '..', 'examples', 'server-signing');
const cli = process.env.KYSO_CLI;
const testDir = process.env.KYSO_TEST_DIR;
const manifestPath = testDir ? join(testDir, 'manifest.json') : undefined;
const skip = !cli
  ? 'no kyso binary (set KYSO_CLI)'
  : !manifestPath || !existsSync(manifestPath)
    ? 'no demo token (set KYSO_TEST_DIR to the output of tests/pki/make-demo-token.sh)'
    : false;

test('example page script parses', () => {
  execFileSync(process.execPath, ['--check', join(example, 'page.js')]);
  execFileSync(process.execPath, ['--check', join(example, 'server.mjs')]);
});

test('exampleServer_prepareSignEmbed_classPdfsSignedByPrincipal_wrongSignatureRefused', { skip, timeout: 120_000 }, async () => {
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-example-'));
  // SoftHSM2's file store is not safe for several processes at once: a private copy of the token.
  cpSync(join(testDir, 'tokens'), join(tmp, 'tokens'), { recursive: true });
  const softhsmConf = join(tmp, 'softhsm2.conf');
  writeFileSync(softhsmConf, `directories.tokendir = ${join(tmp, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = softhsmConf;

  const docs = join(tmp, 'lop-12A1');
  mkdirSync(docs);
  const class5 = students.slice(0, 5);
  for (const s of class5) writeFileSync(join(docs, `hb-${String(s.no).padStart(2, '0')}.pdf`), transcriptPdf(s));

  const global = ['--no-system-modules', '--module', manifest.module, '--lang', 'en'];
  const server = await startExampleServer({ docs, work: join(tmp, 'work'), port: 0, kyso: cli, kysoArgs: global });
  const post = async (path, body) => {
    const res = await fetch(new URL(path, server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  try {
    // The page: the principal's credential as listCredentials gives it (base64 DER, chain).
    const principal = manifest.credentials.find((c) => c.name === 'principal');
    const certificate = readFileSync(principal.cert_der).toString('base64');
    const chain = [new X509Certificate(readFileSync(manifest.pki.sub)).raw.toString('base64')];
    const prepared = await post('/api/prepare', { certificate, chain });
    assert.equal(prepared.status, 200, JSON.stringify(prepared.json));
    assert.equal(prepared.json.algorithm, 'rsa-sha256');
    assert.equal(prepared.json.items.length, 5);
    assert.deepEqual(prepared.json.failed, []);
    for (const item of prepared.json.items) {
      assert.equal(item.type, 'hash');
      assert.equal(item.hashAlgorithm, 'sha256');
      assert.equal(Object.keys(item).includes('state'), false); // states stay on the server
    }

    // The agent: each digest signed on the token (what a hash batch item does).
    const sign = async (b64) => {
      const hex = Buffer.from(b64, 'base64').toString('hex');
      const { stdout } = await run(cli, [...global, 'sign-hash', '--role', 'principal', '--alg', 'rsa-sha256',
        '--hash', hex, '--pin-file', manifest.pin_file, '--json']);
      return JSON.parse(stdout).signature;
    };
    const signatures = [];
    for (const item of prepared.json.items) signatures.push(await sign(item.hash));

    // A signature over another document's digest is refused for that document only.
    const second = await post('/api/prepare', { certificate, chain });
    const swapped = second.json.items.map((_, i) => ({ index: i, ok: true, signature: signatures[(i + 1) % 5] }));
    const refused = await post('/api/embed', { batchId: second.json.batchId, certificate, results: swapped });
    assert.equal(refused.status, 200);
    assert.equal(refused.json.embedded, 0);
    assert.deepEqual(refused.json.files.map((f) => f.error.code), Array(5).fill('SIGNATURE_MISMATCH'));

    const embedded = await post('/api/embed', {
      batchId: prepared.json.batchId,
      certificate,
      results: signatures.map((signature, index) => ({ index, ok: true, signature })),
    });
    assert.equal(embedded.status, 200, JSON.stringify(embedded.json));
    assert.equal(embedded.json.embedded, 5);
    assert.equal(embedded.json.failed, 0);

    const list = await (await fetch(new URL('/api/documents', server.url))).json();
    assert.deepEqual(list.documents.map((d) => d.signed), Array(5).fill(true));
    for (const f of embedded.json.files) {
      assert.equal(f.ok, true);
      const res = await fetch(new URL(f.download, server.url));
      assert.equal(res.status, 200);
      const pdf = join(tmp, `downloaded-${f.file}`);
      writeFileSync(pdf, Buffer.from(await res.arrayBuffer()));
      const report = await run('pdfsig', [pdf]).then((r) => r.stdout, (e) => e.stdout);
      assert.equal((report.match(/^Signature #/gm) ?? []).length, 1, report);
      assert.match(report, /Signature Validation: Signature is Valid/);
      assert.ok(report.includes(`Signer Certificate Common Name: ${principal.cn}`), report);
      await run('qpdf', ['--check', pdf]);
    }
    // Unknown batches and paths outside the signed folder are refused.
    assert.equal((await post('/api/embed', { batchId: '0'.repeat(24), results: [] })).status, 404);
    assert.equal((await fetch(new URL('/signed/..%2F..%2Fkyso-state.key', server.url))).status, 404);
  } finally {
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
