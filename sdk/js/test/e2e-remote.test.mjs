// End to end in a real browser with a remote credential: kyso-appliance (CSC v2 over its own
// copy of the demo SoftHSM token, TLS with a throw-away CA, password + PIN + TOTP) as the
// principal's signing service, the real kyso-agent configured with it as a [[remote]] service
// next to its token (which does not hold the principal's key), the demo page in Debian's
// headless chromium. The homeroom teacher signs the class on the token; the principal signs in to
// the remote service from the page (Kyso's password dialog), picks the remote credential and
// signs the whole class as one 40-item batch: one PIN entry, one OTP entry, 40 progress events,
// the same summary a token gives. Every signature is verified with OpenSSL (Node's crypto)
// against the returned certificate, and one is compared byte for byte with `kyso sign-hash` on
// the token that holds the same key (RSA PKCS#1 v1.5 is deterministic: same key, same bytes).
// Then the class's XML and PDF files: the teacher on the token, the principal on the remote key
// (the agent prepares each file, the one OTP of each batch authorizes exactly their digests),
// every signature checked by xmlsec1, pdfsig and qpdf --check.
//
// Env: KYSO_AGENT_BIN, KYSO_APPLIANCE_BIN, KYSO_CLI, KYSO_TEST_DIR (the demo token), KYSO_CHROMIUM.
// Without them the test is skipped, saying what is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, constants, verify, X509Certificate } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from '../demo/serve.mjs';
import { students, transcriptOf } from '../demo/class-data.js';
import { saveSignedFiles, verifySignedFiles } from '../demo/verify-files.mjs';
import { launchBrowser } from './browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const agentBin = process.env.KYSO_AGENT_BIN;
const applianceBin = process.env.KYSO_APPLIANCE_BIN;
const cli = process.env.KYSO_CLI;
const testDir = process.env.KYSO_TEST_DIR;
const manifestPath = testDir ? join(testDir, 'manifest.json') : undefined;
const skip = !agentBin || !existsSync(agentBin)
  ? 'no kyso-agent binary (KYSO_AGENT_BIN)'
  : !applianceBin || !existsSync(applianceBin)
    ? 'no kyso-appliance binary (KYSO_APPLIANCE_BIN)'
    : !manifestPath || !existsSync(manifestPath)
      ? 'no demo token (KYSO_TEST_DIR)'
      : false;

const SERVICE = 'Sở GD&ĐT – máy ký';
const PASSWORD = 'mật khẩu hiệu trưởng';
const TOTP = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

/** Spawns a process and resolves `ready` with the first match of `pattern` on stdout or stderr. */
function startProcess(bin, args, env, pattern, what) {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const ready = new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 20 s\n${out}`)), 20_000);
    const onData = (d) => {
      out += d;
      const m = out.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolveReady(m);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready\n${out}`));
    });
  });
  return {
    ready,
    logs: () => `--- ${what}\n${out}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      return exited;
    },
  };
}

function verifyRsa(algorithm, data, certificateB64, signatureB64) {
  assert.equal(algorithm, 'rsa-sha256');
  const cert = new X509Certificate(Buffer.from(certificateB64, 'base64'));
  return verify('sha256', data, { key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.from(signatureB64, 'base64'));
}

test('browser_remotePrincipal_signsClassBatchWithOneOtp_sameResultsAsToken', { skip, timeout: 290_000 }, async () => {
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const principal = manifest.credentials.find((c) => c.name === 'principal');
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-e2e-remote-'));
  const shots = process.env.KYSO_E2E_SHOTS ?? join(tmp, 'shots');
  mkdirSync(shots, { recursive: true });

  // The agent's token: a copy of the demo token without the principal's key and certificate, so
  // the principal's only credential is the remote one (same certificate, key in the "HSM").
  // (The run's token directory also holds a blank token: name the demo token. SoftHSM2's file
  // store is not safe for several processes, so a failed removal copies again.)
  const tokens = join(tmp, 'agent-tokens');
  const agentConf = join(tmp, 'softhsm2.conf');
  writeFileSync(agentConf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  for (let attempt = 1; ; attempt++) {
    rmSync(tokens, { recursive: true, force: true });
    cpSync(join(testDir, 'tokens'), tokens, { recursive: true });
    try {
      for (const type of ['privkey', 'cert']) {
        execFileSync('pkcs11-tool', ['--module', manifest.module, '--token-label', manifest.token_label ?? 'Kyso Demo', '--login', '--pin', manifest.user_pin, '--delete-object', '--type', type, '--id', principal.id],
          { env: { ...process.env, SOFTHSM2_CONF: agentConf }, stdio: ['ignore', 'pipe', 'pipe'] });
      }
      break;
    } catch (e) {
      if (attempt === 3) throw new Error(`could not remove the principal's key from the agent's token copy: ${e.stderr ?? e.message}`);
    }
  }

  // The scripted user: PIN, password, and an authenticator app (oathtool) for the OTP.
  const pinentryLog = join(tmp, 'pinentry.log');
  writeFileSync(pinentryLog, '');
  const pinentry = join(tmp, 'pinentry');
  writeFileSync(
    pinentry,
    `#!/bin/sh\nexport KYSO_PINENTRY_LOG='${pinentryLog}' KYSO_PINENTRY_PIN='${manifest.user_pin}' KYSO_PINENTRY_PASSWORD='${PASSWORD}' KYSO_PINENTRY_TOTP='${TOTP}' KYSO_PINENTRY_OTP_STEPS='${join(tmp, 'otp-steps')}'\nexec '${join(repo, 'tests', 'agent', 'scripted-pinentry.sh')}' "$@"\n`,
  );
  chmodSync(pinentry, 0o755);
  const dialogs = () => readFileSync(pinentryLog, 'utf8').split('\n').filter(Boolean);

  let appliance;
  let agent;
  let demo;
  let browser;
  let page;
  let failed = false;
  try {
    // The appliance: its own token copy, TLS, the principal as its user.
    const hsm = join(tmp, 'hsm');
    const applianceConfig = execFileSync(join(repo, 'tests', 'remote', 'prepare-appliance.sh'), [applianceBin, hsm, testDir], { encoding: 'utf8' }).trim();
    appliance = startProcess(
      applianceBin,
      ['--config', applianceConfig, '--port-file', join(hsm, 'port')],
      { ...process.env, SOFTHSM2_CONF: join(hsm, 'softhsm2.conf') },
      /listening on port (\d+)/,
      'kyso-appliance',
    );

    const [, hsmPort] = await appliance.ready;
    const url = `https://127.0.0.1:${hsmPort}/csc/v2`;
    demo = await startDemoServer({ port: 0 });
    const origin = demo.url.replace(/\/$/, '');
    const agentToml = join(tmp, 'kyso-agent.toml');
    writeFileSync(agentToml, `[[remote]]\nname = "${SERVICE}"\nurl = "${url}"\nusername = "principal"\nca_file = "${join(hsm, 'ca.crt')}"\n`);
    agent = startProcess(
      agentBin,
      ['--config', agentToml, '--port', '0', '--module', manifest.module, '--no-system-modules', '--pinentry', pinentry,
        '--state-dir', join(tmp, 'state'), '--allow-origin', origin, '--log-level', 'info'],
      { ...process.env, SOFTHSM2_CONF: agentConf },
      /listening on wss?:\/\/127\.0\.0\.1:(\d+)\//,
      'kyso-agent',
    );
    const [, agentPort] = await agent.ready;
    browser = await launchBrowser();
    page = await browser.context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const step = async (name, fn) => {
      try {
        await fn();
        console.log(`ok: ${name}`);
      } catch (e) {
        e.message = `${name}: ${e.message}`;
        throw e;
      }
    };

    await step('the page lists the token credentials and the remote service, signed out, without a dialog', async () => {
      await page.goto(`${demo.url}?ports=${agentPort}`);
      await page.evaluate(() => window.kysoDemo.ready);
      await page.waitForFunction(() => window.kysoDemo.state.credentials.teacher.length > 0, null, { timeout: 15_000 });
      // Personal certificates on the token may sign as principal too, but not the principal's own.
      const cns = await page.evaluate(() => window.kysoDemo.state.credentials.principal.map((c) => c.certificate.commonName));
      assert.ok(!cns.includes(principal.cn), `the agent's token still holds the principal's certificate: ${cns}`);
      assert.match(await page.textContent('#remote-status'), /chưa đăng nhập/);
      assert.equal(await page.isVisible('#btn-remote-signin'), true);
      assert.deepEqual(dialogs(), []);
    });

    await step('GVCN signs the class on the token', async () => {
      await page.click('#btn-teacher');
      await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'teacher') && !window.kysoDemo.state.busy, null, { timeout: 60_000 });
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.find((x) => x.role === 'teacher'));
      assert.deepEqual([s.total, s.signed, s.failed], [40, 40, 0]);
    });

    await step('the principal signs in to the remote service in Kyso\'s dialog', async () => {
      const before = dialogs().length;
      await page.click('#btn-remote-signin');
      await page.waitForFunction(() => window.kysoDemo.state.credentials.principal.some((c) => c.source.kind === 'remote') && !window.kysoDemo.state.busy, null, { timeout: 30_000 });
      const fresh = dialogs().slice(before);
      assert.equal(fresh.length, 1);
      assert.match(fresh[0], /prompt=Mật khẩu:/);
      assert.ok(fresh[0].includes(SERVICE) && fresh[0].includes(origin), fresh[0]);
      const cred = await page.evaluate(() => window.kysoDemo.state.credentials.principal.find((c) => c.source.kind === 'remote'));
      assert.equal(cred.source.kind, 'remote');
      assert.equal(cred.source.name, SERVICE);
      assert.equal(cred.certificate.commonName, principal.cn);
      assert.match(await page.textContent('#cred-principal'), /ký từ xa/);
      assert.match(await page.textContent('#remote-status'), /đã đăng nhập/);
      await page.selectOption('#cred-principal', cred.id);
    });

    await step('the principal signs the whole class as one batch: one PIN, one OTP, 40 progress events', async () => {
      const before = dialogs().length;
      await page.click('#btn-principal');
      await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'principal') && !window.kysoDemo.state.busy, null, { timeout: 60_000 });
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.find((x) => x.role === 'principal'));
      assert.deepEqual([s.total, s.signed, s.failed, s.cancelled], [40, 40, 0, false]);
      const progress = await page.evaluate(() => window.kysoDemo.state.progressEvents.filter((e) => e.role === 'principal'));
      assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
      assert.ok(progress.every((e) => e.ok && e.total === 40 && e.batchId === s.batchId));
      assert.equal(await page.getAttribute('#progress-bar', 'aria-valuenow'), '40');
      const fresh = dialogs().slice(before);
      assert.equal(fresh.length, 2, fresh.join('\n'));
      assert.match(fresh[0], /prompt=Mã PIN:/);
      assert.match(fresh[0], /Ký 40 văn bản/);
      assert.ok(fresh[0].includes(SERVICE));
      assert.match(fresh[1], /prompt=Mã OTP:/);
      await page.screenshot({ path: join(shots, 'remote-principal.png'), fullPage: true });
    });

    await step('every principal signature verifies, and matches what the token gives for the same key', async () => {
      const sigs = await page.evaluate(() => window.kysoDemo.state.signatures);
      for (const student of students) {
        const data = Buffer.from(JSON.stringify(transcriptOf(student)), 'utf8');
        const sig = sigs[student.lookupCode]?.principal;
        assert.ok(sig, `${student.fullName}: no principal signature`);
        assert.equal(sig.hash, createHash('sha256').update(data).digest('hex'));
        assert.equal(Buffer.from(sig.certificate, 'base64').equals(readFileSync(principal.cert_der)), true);
        assert.ok(verifyRsa(sig.algorithm, data, sig.certificate, sig.signature), `${student.fullName}: does not verify`);
        assert.equal(sig.valid, true, `${student.fullName}: the page's own check says ${sig.valid}`);
      }
      if (cli && existsSync(cli)) {
        // The same hash signed by the same key on a token, through Kyso's CLI: the same bytes.
        const first = sigs[students[0].lookupCode].principal;
        const tokenCopy = join(tmp, 'cli-tokens');
        cpSync(join(testDir, 'tokens'), tokenCopy, { recursive: true });
        const conf = join(tmp, 'cli-softhsm2.conf');
        writeFileSync(conf, `directories.tokendir = ${tokenCopy}\nobjectstore.backend = file\nlog.level = ERROR\n`);
        const pinFile = join(tmp, 'pin');
        writeFileSync(pinFile, `${manifest.user_pin}\n`, { mode: 0o600 });
        const out = JSON.parse(execFileSync(cli, ['--module', manifest.module, '--no-system-modules', 'sign-hash', '--credential', principal.cred_id ?? first.credentialId,
          '--alg', 'rsa-sha256', '--hash', first.hash, '--pin-file', pinFile, '--json'], { env: { ...process.env, SOFTHSM2_CONF: conf }, encoding: 'utf8' }));
        assert.equal(out.signature, first.signature, 'the remote signature differs from the token signature');
      }
    });

    await step('GVCN signs the class\'s XML and PDF files on the token', async () => {
      for (const format of ['xml', 'pdf']) {
        const before = await page.evaluate(() => window.kysoDemo.state.summaries.length);
        await page.click(`#btn-${format}-teacher`);
        await page.waitForFunction((n) => window.kysoDemo.state.summaries.length > n && !window.kysoDemo.state.busy, before, { timeout: 60_000 });
        const s = await page.evaluate(() => window.kysoDemo.state.summaries.at(-1));
        assert.deepEqual([s.format, s.role, s.total, s.signed, s.failed], [format, 'teacher', 40, 40, 0], JSON.stringify(s));
      }
    });

    await step('the principal signs the class\'s 40 XML and 40 PDF files on the remote key: one PIN and one OTP per batch', async () => {
      for (const format of ['xml', 'pdf']) {
        const before = dialogs().length;
        const n = await page.evaluate(() => window.kysoDemo.state.summaries.length);
        await page.click(`#btn-${format}-principal`);
        await page.waitForFunction((k) => window.kysoDemo.state.summaries.length > k && !window.kysoDemo.state.busy, n, { timeout: 90_000 });
        const s = await page.evaluate(() => window.kysoDemo.state.summaries.at(-1));
        assert.deepEqual([s.format, s.role, s.total, s.signed, s.failed, s.cancelled], [format, 'principal', 40, 40, 0, false], JSON.stringify(s));
        const progress = await page.evaluate((f) => window.kysoDemo.state.progressEvents.filter((e) => e.role === 'principal' && e.format === f), format);
        assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
        const fresh = dialogs().slice(before);
        assert.equal(fresh.length, 2, fresh.join('\n'));
        assert.match(fresh[0], /prompt=Mã PIN:/);
        assert.match(fresh[0], /Ký 40 văn bản/);
        assert.ok(fresh[0].includes(format === 'xml' ? '[XML · XML-DSig' : '[PDF · PAdES B-B'), fresh[0]);
        assert.ok(fresh[0].includes(SERVICE));
        assert.match(fresh[1], /prompt=Mã OTP:/);
      }
    });

    await step('every XML signature verifies in xmlsec1, every PDF signature in pdfsig, every PDF in qpdf --check', async () => {
      const dir = join(tmp, 'signed');
      assert.equal(await saveSignedFiles(page, dir), 80);
      const r = await verifySignedFiles(dir, manifest.pki.root, manifest.pki.sub);
      assert.deepEqual(r.failures.map((f) => `${f.file}: ${f.what}\n${f.out}`).slice(0, 3), []);
      assert.deepEqual([r.xml.files, r.xml.signatures, r.xml.valid], [40, 80, 80]);
      assert.deepEqual([r.pdf.files, r.pdf.signatures, r.pdf.valid, r.pdf.qpdf], [40, 80, 80, 40]);
      // The principal's signatures are the remote credential's: its certificate in each PDF.
      const out = execFileSync('pdfsig', [join(dir, 'hoc-ba-12A1-01.pdf')], { encoding: 'utf8' });
      assert.ok(out.includes(principal.cn), out);
    });

    assert.deepEqual(pageErrors, []);
  } catch (e) {
    failed = true;
    if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(agent?.logs() ?? '');
    console.error(appliance?.logs() ?? '');
    console.error(`pinentry log:\n${existsSync(pinentryLog) ? readFileSync(pinentryLog, 'utf8') : ''}`);
    throw e;
  } finally {
    await browser?.close();
    await demo?.close();
    await agent?.stop();
    await appliance?.stop();
    if (failed) console.error(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
});
