// End to end in a real browser: the real kyso-agent on the demo SoftHSM token, the demo page on a
// loopback origin, Debian's headless chromium clicking through it as a school would: pair, list
// credentials, GVCN signs one transcript then the rest of the class, the principal signs the
// whole class as one 40-item batch (with progress), the school's seal last. Every signature is
// verified with OpenSSL (Node's crypto) against the certificate the agent returned, over the
// transcript JSON hashed independently here, and the certificate against the demo PKI. Then the
// class is signed again as XML and PDF files (three 40-file batches each) and every signature is
// checked by xmlsec1 --verify (in place), pdfsig and qpdf --check.
//
// Env: KYSO_AGENT_BIN   the kyso-agent binary (default: ../../build*/agent/kyso-agent if present)
//      KYSO_TEST_DIR    the demo token made by tests/pki/make-demo-token.sh (manifest.json)
//      SOFTHSM2_CONF    its SoftHSM2 config (default: KYSO_TEST_DIR/softhsm2.conf)
//      KYSO_PINENTRY    pinentry to use (default: tests/agent/scripted-pinentry.sh, auto-confirms)
//      KYSO_E2E_SHOTS   directory for screenshots (default: a temp dir, printed)
//      KYSO_CHROMIUM    browser binary (default /usr/bin/chromium)
// Without an agent binary or a demo token the test is skipped, saying what is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from '../demo/serve.mjs';
import { students, transcriptOf, school } from '../demo/class-data.js';
import { launchBrowser } from './browser.mjs';
import { saveSignedFiles, verifySignedFiles } from '../demo/verify-files.mjs';
import { verifySignature } from './verify-signature.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');

function findAgent() {
  if (process.env.KYSO_AGENT_BIN) return process.env.KYSO_AGENT_BIN;
  for (const dir of ['build', 'build-sdk']) {
    const p = join(repo, dir, 'agent', 'kyso-agent');
    if (existsSync(p)) return p;
  }
  return undefined;
}

const agentBin = findAgent();
const testDir = process.env.KYSO_TEST_DIR;
const manifestPath = testDir ? join(testDir, 'manifest.json') : undefined;
const skip = !agentBin
  ? 'no kyso-agent binary (set KYSO_AGENT_BIN or build the kyso-agent target)'
  : !manifestPath || !existsSync(manifestPath)
    ? 'no demo token (set KYSO_TEST_DIR to the output of tests/pki/make-demo-token.sh)'
    : false;

/** Starts kyso-agent on a free port; resolves with its port once it prints its listening line. */
function startAgent(args, env) {
  const child = spawn(agentBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const port = new Promise((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`kyso-agent did not start within 15 s\n${err}`)), 15_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on wss?:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`kyso-agent exited (${code ?? signal}) before listening\n${err}`));
    });
  });
  return {
    port,
    logs: () => `--- kyso-agent stdout\n${out}\n--- kyso-agent stderr\n${err}`,
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

const cnOf = (cert) => /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];

test('browser_demoPage_pairsAndSignsClassAsTeacherPrincipalSeal_asHashesXmlAndPdf_everySignatureVerifies', { skip, timeout: 290_000 }, async () => {
  const t0 = Date.now();
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-e2e-'));
  const shots = process.env.KYSO_E2E_SHOTS ?? join(tmp, 'shots');
  mkdirSync(shots, { recursive: true });
  const pinentryLog = join(tmp, 'pinentry.log');
  writeFileSync(pinentryLog, '');
  // The agent may start its pinentry with a clean environment: bake the settings into a wrapper.
  const pinentry = join(tmp, 'pinentry');
  const actionFile = join(tmp, 'pinentry.action'); // what the "user" answers: confirm | cancel
  const scripted = process.env.KYSO_PINENTRY ?? join(repo, 'tests', 'agent', 'scripted-pinentry.sh');
  writeFileSync(
    pinentry,
    `#!/bin/sh\nexport KYSO_PINENTRY_LOG='${pinentryLog}' KYSO_PINENTRY_PIN='${manifest.user_pin}' KYSO_PINENTRY_ACTION_FILE='${actionFile}'\nexec '${scripted}' "$@"\n`,
  );
  const userWill = (action) => writeFileSync(actionFile, `${action}\n`);
  userWill('confirm');
  chmodSync(pinentry, 0o755);

  // SoftHSM2's file store is not safe for several processes at once, and ctest runs other tests
  // on the run's token meanwhile: the agent signs on a private copy (same keys, same certificates).
  cpSync(join(testDir, 'tokens'), join(tmp, 'tokens'), { recursive: true });
  const softhsmConf = join(tmp, 'softhsm2.conf');
  writeFileSync(softhsmConf, `directories.tokendir = ${join(tmp, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { ...process.env, SOFTHSM2_CONF: softhsmConf };
  const agent = startAgent(
    ['--port', '0', '--module', manifest.module, '--no-system-modules', '--pinentry', pinentry,
      '--state-dir', join(tmp, 'state'), '--log-level', 'info'],
    env,
  );
  let failed = false;
  let demo;
  let browser;
  let page;
  try {
    const agentPort = await agent.port;
    demo = await startDemoServer({ port: 0 });
    const origin = demo.url.replace(/\/$/, '');
    browser = await launchBrowser();
    page = await browser.context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const tStart = Date.now();
    const timings = {};
    const lap = (name, since) => (timings[name] = Date.now() - since);
    const step = async (name, fn) => {
      try {
        await fn();
        console.log(`ok: ${name}`);
      } catch (e) {
        e.message = `${name}: ${e.message}`;
        throw e;
      }
    };
    const newDialogs = (() => {
      let seen = 0;
      return () => {
        const all = readFileSync(pinentryLog, 'utf8');
        const fresh = all.slice(seen);
        seen = all.length;
        return fresh;
      };
    })();

    await step('page connects to the agent and is not paired yet', async () => {
      await page.goto(`${demo.url}?ports=${agentPort}`);
      await page.evaluate(() => window.kysoDemo.ready);
      const info = await page.evaluate(() => window.kysoDemo.state.info);
      assert.ok(info, 'the page did not connect to the agent');
      assert.equal(info.agent, 'kyso-agent');
      assert.equal(info.origin, origin);
      assert.equal(info.paired, false);
      assert.equal(await page.textContent('#title'), `Học bạ số — Lớp ${school.className}, ${school.name}, năm học ${school.schoolYear}`);
      // Before pairing nothing but hello/pair works, whatever the page calls.
      const code = await page.evaluate(() => window.kysoDemo.state.client.listCredentials().then(() => 'ok', (e) => e.code));
      assert.equal(code, 'ORIGIN_NOT_PAIRED');
      await page.screenshot({ path: join(shots, '1-connected.png') });
    });

    await step('the user cancels the first pairing dialog: the page says so in Vietnamese', async () => {
      userWill('cancel');
      await page.click('#btn-pair');
      await page.waitForFunction(() => !window.kysoDemo.state.busy && !document.getElementById('notice').hidden, null, { timeout: 30_000 });
      userWill('confirm');
      const notice = await page.textContent('#notice');
      assert.match(notice, /Người dùng đã hủy thao tác/);
      assert.match(notice, /\[USER_CANCELLED\]/);
      assert.equal(await page.evaluate(() => window.kysoDemo.state.info.paired), false);
      assert.equal(await page.isEnabled('#btn-pair'), true);
    });

    await step('pairing shows the same code in the page and in the agent dialog', async () => {
      // After a cancelled pairing dialog the agent refuses this origin's pair for 5 s
      // (PAIR_COOLDOWN, docs/protocol.md): a page cannot put the dialog up again and again.
      await new Promise((resolve) => setTimeout(resolve, 5_500));
      const since = Date.now();
      await page.click('#btn-pair');
      await page.waitForFunction(() => window.kysoDemo.state.info?.paired === true && !window.kysoDemo.state.busy, null, { timeout: 30_000 });
      lap('pair', since);
      const log = newDialogs();
      const shown = await page.textContent('#pair-code');
      assert.match(shown, /^\d{3} \d{3}$/);
      assert.ok(log.includes(shown), `the agent's dialog did not show the page's code ${shown}:\n${log}`);
      assert.ok(log.includes(origin), `the agent's dialog did not show the origin ${origin}`);
    });

    await step('credentials are listed per role', async () => {
      await page.waitForFunction(() => ['teacher', 'principal', 'seal'].every((r) => window.kysoDemo.state.credentials[r].length > 0), null, { timeout: 15_000 });
      const creds = await page.evaluate(() => window.kysoDemo.state.credentials);
      const want = (role) => manifest.credentials.find((c) => c.name === role).cn;
      assert.ok(creds.teacher.some((c) => c.certificate.commonName === want('teacher')));
      assert.ok(creds.principal.some((c) => c.certificate.commonName === want('principal')));
      assert.ok(creds.seal.every((c) => c.certificate.kind === 'organization'));
      assert.ok(creds.seal.some((c) => c.certificate.commonName === want('seal')));
      for (const role of ['teacher', 'principal']) assert.ok(creds[role].every((c) => c.certificate.kind === 'person'));
      // As a user would: pick the demo token's valid credential for each role in the page.
      for (const role of ['teacher', 'principal', 'seal']) {
        const id = creds[role].find((c) => c.certificate.commonName === want(role)).id;
        await page.selectOption(`#cred-${role}`, id);
      }
      await page.screenshot({ path: join(shots, '2-paired.png') });
    });

    await step('the user cancels a signing dialog: nothing is signed, the row says why', async () => {
      newDialogs();
      const first = students[0];
      userWill('cancel');
      await page.click(`[data-sign-one="${first.lookupCode}"]`);
      await page.waitForFunction((k) => window.kysoDemo.state.errors[k] && !window.kysoDemo.state.busy, first.lookupCode, { timeout: 30_000 });
      userWill('confirm');
      const st = await page.evaluate((k) => ({ err: window.kysoDemo.state.errors[k], sig: window.kysoDemo.state.signatures[k] }), first.lookupCode);
      assert.equal(st.err.code, 'USER_CANCELLED');
      assert.equal(st.sig, undefined);
      assert.match(await page.textContent('#notice'), /Người dùng đã hủy thao tác/);
      assert.match(await page.textContent(`tr[data-key="${first.lookupCode}"]`), /Lỗi ký GVCN/);
      assert.match(newDialogs(), /^GETPIN .* action=cancel /m);
    });

    await step('GVCN signs one transcript', async () => {
      const since = Date.now();
      const first = students[0];
      // The row still carries the cancelled attempt's error until the new answer arrives: wait
      // for the signature, or for an error other than that one.
      await page.click(`[data-sign-one="${first.lookupCode}"]`);
      await page.waitForFunction(
        (k) => window.kysoDemo.state.signatures[k]?.teacher || (window.kysoDemo.state.errors[k] && window.kysoDemo.state.errors[k].code !== 'USER_CANCELLED'),
        first.lookupCode,
        { timeout: 30_000 },
      );
      lap('teacher.sign', since);
      const err = await page.evaluate((k) => window.kysoDemo.state.errors[k], first.lookupCode);
      assert.equal(err, undefined, `sign failed: ${JSON.stringify(err)}`);
      const dialog = newDialogs();
      assert.ok(dialog.includes(first.fullName), `the dialog did not show the student's name:\n${dialog}`);
      assert.ok(dialog.includes(origin), 'the dialog did not show the origin');
    });

    await step('GVCN signs the other 39 as one batch', async () => {
      newDialogs();
      const since = Date.now();
      await page.click('#btn-teacher');
      await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'teacher') && !window.kysoDemo.state.busy, null, { timeout: 60_000 });
      lap('teacher.batch39', since);
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.find((x) => x.role === 'teacher'));
      assert.deepEqual([s.total, s.signed, s.failed, s.cancelled], [39, 39, 0, false]);
    });

    await step('the principal signs the whole class as one 40-item batch with progress', async () => {
      newDialogs();
      const since = Date.now();
      await page.click('#btn-principal');
      await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'principal') && !window.kysoDemo.state.busy, null, { timeout: 60_000 });
      lap('principal.batch40', since);
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.find((x) => x.role === 'principal'));
      assert.deepEqual([s.total, s.signed, s.failed, s.cancelled], [40, 40, 0, false]);
      const progress = await page.evaluate(() => window.kysoDemo.state.progressEvents.filter((e) => e.role === 'principal'));
      assert.equal(progress.length, 40);
      assert.deepEqual(progress.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
      assert.ok(progress.every((e) => e.ok && e.total === 40 && e.batchId === s.batchId));
      assert.equal(await page.getAttribute('#progress-bar', 'aria-valuenow'), '40');
      const dialog = newDialogs();
      assert.match(dialog, /\b40\b/, `the batch dialog did not show the count:\n${dialog}`);
      assert.ok(dialog.includes(students[0].fullName), 'the batch dialog did not show the first titles');
      assert.equal((dialog.match(/^GETPIN /gm) ?? []).length <= 1, true, 'more than one PIN entry for one batch');
      await page.screenshot({ path: join(shots, '3-principal.png') });
    });

    await step('the school seal is applied last', async () => {
      const since = Date.now();
      await page.click('#btn-seal');
      await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'seal') && !window.kysoDemo.state.busy, null, { timeout: 60_000 });
      lap('seal.batch40', since);
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.find((x) => x.role === 'seal'));
      assert.deepEqual([s.total, s.signed, s.failed], [40, 40, 0]);
      const statuses = await page.$$eval('#rows .badge', (els) => els.map((e) => e.textContent));
      assert.equal(statuses.filter((x) => x === 'Đã đóng dấu').length, 40);
      await page.screenshot({ path: join(shots, '4-sealed.png'), fullPage: true });
    });

    await step('every signature verifies with OpenSSL against the returned certificate', async () => {
      const sigs = await page.evaluate(() => window.kysoDemo.state.signatures);
      const root = new X509Certificate(readFileSync(manifest.pki.root));
      const sub = new X509Certificate(readFileSync(manifest.pki.sub));
      const expectedCn = {
        teacher: manifest.credentials.find((c) => c.name === 'teacher').cn,
        principal: manifest.credentials.find((c) => c.name === 'principal').cn,
        seal: manifest.credentials.find((c) => c.name === 'seal').cn,
      };
      let verified = 0;
      for (const student of students) {
        // Hashed here, independently of the page: the signature must cover this transcript.
        const data = Buffer.from(JSON.stringify(transcriptOf(student)), 'utf8');
        const digest = createHash('sha256').update(data).digest('hex');
        for (const role of ['teacher', 'principal', 'seal']) {
          const sig = sigs[student.lookupCode]?.[role];
          assert.ok(sig, `${student.fullName}: no ${role} signature`);
          assert.equal(sig.hash, digest, `${student.fullName}/${role}: signed digest differs`);
          assert.ok(verifySignature(sig.algorithm, data, sig.certificate, sig.signature), `${student.fullName}/${role}: ${sig.algorithm} signature does not verify`);
          const cert = new X509Certificate(Buffer.from(sig.certificate, 'base64'));
          assert.ok(cert.verify(sub.publicKey) && sub.verify(root.publicKey), `${role}: certificate does not chain to the demo root`);
          assert.equal(cnOf(cert), expectedCn[role]);
          // The page checked it too, with the browser's WebCrypto (BoringSSL): a second verifier.
          assert.equal(sig.valid, true, `${student.fullName}/${role}: the page's own check says ${sig.valid}`);
          verified++;
        }
      }
      assert.equal(verified, 120);
      // A signature over a different transcript must not verify (the check is not vacuous).
      const a = sigs[students[0].lookupCode].principal;
      assert.equal(verifySignature(a.algorithm, Buffer.from(JSON.stringify(transcriptOf(students[1]))), a.certificate, a.signature), false);
    });

    await step('the class is signed as XML and PDF files, teacher → principal → seal, each a 40-file batch', async () => {
      newDialogs();
      for (const format of ['xml', 'pdf']) {
        for (const role of ['teacher', 'principal', 'seal']) {
          const since = Date.now();
          const before = await page.evaluate(() => window.kysoDemo.state.summaries.length);
          await page.click(`#btn-${format}-${role}`);
          await page.waitForFunction((n) => window.kysoDemo.state.summaries.length > n && !window.kysoDemo.state.busy, before, { timeout: 120_000 });
          lap(`${format}.${role}40`, since);
          const s = await page.evaluate(() => window.kysoDemo.state.summaries.at(-1));
          assert.deepEqual([s.format, s.role, s.total, s.signed, s.failed], [format, role, 40, 40, 0], JSON.stringify(s));
        }
      }
      const dialog = newDialogs();
      assert.match(dialog, /Ký 40 văn bản/);
      assert.ok(dialog.includes(`[XML · XML-DSig`), `the dialog did not show the XML documents' type:\n${dialog.slice(0, 2000)}`);
      assert.ok(dialog.includes(`[PDF · PAdES B-B`), 'the dialog did not show the PDF documents\' type');
      assert.ok(dialog.includes(students[0].fullName));
      await page.screenshot({ path: join(shots, '5-files.png'), fullPage: true });
    });

    await step('every XML signature verifies in xmlsec1, every PDF signature in pdfsig, every PDF in qpdf --check', async () => {
      const dir = join(shots, 'signed');
      assert.equal(await saveSignedFiles(page, dir), 80);
      const r = await verifySignedFiles(dir, manifest.pki.root, manifest.pki.sub);
      assert.deepEqual(r.failures.map((f) => `${f.file}: ${f.what}\n${f.out}`).slice(0, 3), []);
      assert.deepEqual([r.xml.files, r.xml.signatures, r.xml.valid], [40, 120, 120]);
      assert.deepEqual([r.pdf.files, r.pdf.signatures, r.pdf.valid, r.pdf.qpdf], [40, 120, 120, 40]);
      // Each later signature left the earlier ones in place: the PDF grew by incremental updates.
      const first = readFileSync(join(dir, 'hoc-ba-12A1-01.pdf'));
      assert.equal((first.toString('latin1').match(/%%EOF/g) ?? []).length, 4);
    });

    await step('another origin on the same machine is still not paired', async () => {
      const other = await browser.context.newPage();
      await other.goto(`http://localhost:${demo.port}/?ports=${agentPort}`);
      await other.evaluate(() => window.kysoDemo.ready);
      const res = await other.evaluate(async () => {
        const { client, info } = window.kysoDemo.state;
        const hash = new Uint8Array(32);
        const code = await client.sign({ hash, title: 'x' }, { role: 'teacher' }).then(() => 'signed', (e) => e.code);
        return { paired: info.paired, origin: info.origin, code };
      });
      assert.deepEqual(res, { paired: false, origin: `http://localhost:${demo.port}`, code: 'ORIGIN_NOT_PAIRED' });
      await other.close();
    });

    assert.deepEqual(pageErrors, []);
    timings.total = Date.now() - tStart;
    console.log(`e2e timings (ms): ${JSON.stringify(timings)}; with agent start: ${Date.now() - t0}`);
    console.log(`screenshots: ${shots}`);
  } catch (e) {
    failed = true;
    if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(agent.logs());
    console.error(`pinentry log:\n${existsSync(pinentryLog) ? readFileSync(pinentryLog, 'utf8') : ''}`);
    console.error(`screenshots: ${shots}`);
    throw e;
  } finally {
    await browser?.close();
    await demo?.close();
    const exit = await agent.stop();
    // Kept on failure for the screenshots and logs; the agent's state (pairings, audit) goes.
    if (failed) console.error(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
    assert.ok(exit.signal === 'SIGTERM' || exit.code === 0, `kyso-agent ended badly: ${JSON.stringify(exit)}`);
  }
});
