// Local Network Access in a real Chromium (Debian's, 156): the demo page served over https as a
// *public* site (https://hocba.example.edu.vn, made public with --ip-address-space-overrides and
// resolved to loopback with --host-resolver-rules; its certificate trusted by SPKI pin), the real
// kyso-agent on loopback with that origin allow-listed.
//   1. No permission, no policy: the page's connect() reports the LNA state (LOCAL_NETWORK_PROMPT,
//      or LOCAL_NETWORK_DENIED once headless Chromium answered its own question with Block; never
//      AGENT_NOT_FOUND), the console shows the LNA block, and no request reaches the agent (its
//      debug log names every HTTP request it read). Chromium makes its LNA check once a TCP
//      connection is up, so now and then an empty connection reaches the port and is closed
//      before a byte is sent: the kernel's view (`ss`) is reported, not asserted.
//   2. IT's managed policy (LocalNetworkAccessAllowedForUrls + LoopbackNetworkAllowedForUrls in
//      /etc/chromium/policies/managed/, from `kyso browser-policy` when KYSO_CLI is set): the
//      homeroom teacher signs the class (40 transcripts, one dialog), every signature verified
//      by OpenSSL.
//   3. The page in a cross-origin iframe of https://portal.example.edu.vn (the policy names the
//      top-level page, which is what Chromium matches): without allow="local-network-access" it
//      reports LOCAL_NETWORK_FRAME and reaches nothing; with it, it signs. A CDP permission grant
//      would let the iframe through even without `allow`, so only the policy is used here.
// Env: KYSO_AGENT_BIN, KYSO_TEST_DIR (demo token); optional KYSO_CLI (the kyso binary),
//      KYSO_CHROMIUM. Runs as root (writes the machine's Chromium policy directory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDemoServer } from '../demo/serve.mjs';
import { students, transcriptOf } from '../demo/class-data.js';
import { launchBrowser } from './browser.mjs';
import { removePolicy, writePolicy, POLICY_DIR } from './chromium-policy.mjs';
import { startPrivateAgent } from './private-agent.mjs';
import { verifySignature } from './verify-signature.mjs';

const SITE = 'hocba.example.edu.vn';
const PORTAL = 'portal.example.edu.vn';
const run = promisify(execFile);

const skip = !process.env.KYSO_AGENT_BIN || !existsSync(process.env.KYSO_AGENT_BIN)
  ? 'no kyso-agent binary (KYSO_AGENT_BIN)'
  : !process.env.KYSO_TEST_DIR || !existsSync(join(process.env.KYSO_TEST_DIR, 'manifest.json'))
    ? 'no demo token (KYSO_TEST_DIR)'
    : process.getuid?.() !== 0
      ? `Chromium reads managed policy only from ${POLICY_DIR}: run as root`
      : false;

/** A self-signed certificate for both test sites and its SPKI pin for Chromium. */
function makeCertificate(dir) {
  const key = join(dir, 'site.key');
  const cert = join(dir, 'site.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${SITE}`,
    '-addext', `subjectAltName=DNS:${SITE},DNS:${PORTAL}`], { stdio: 'ignore' });
  const pem = readFileSync(cert);
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { tls: { key: readFileSync(key), cert: pem }, pin: createHash('sha256').update(spki).digest('base64') };
}

/**
 * Every TCP connection that reached the agent's port since `start()`, seen from the kernel
 * (`ss`): established ones while the watch runs, closed ones as TIME-WAIT afterwards. Only
 * connections new since the watch began count, so earlier phases' TIME-WAITs do not.
 */
function connectionWatch(port) {
  const sample = async () => {
    const { stdout } = await run('ss', ['-Htan', `( sport = :${port} )`]);
    return stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 5 && f[0] !== 'LISTEN').map((f) => `${f[3]} ${f[4]}`);
  };
  let before = new Set();
  const seen = new Set();
  let timer;
  return {
    async start() {
      before = new Set(await sample());
      seen.clear();
      timer = setInterval(() => sample().then((s) => s.forEach((c) => before.has(c) || seen.add(c)), () => {}), 40);
    },
    async stop() {
      clearInterval(timer);
      for (const c of await sample()) if (!before.has(c)) seen.add(c);
      return [...seen];
    },
  };
}

/** The managed policy for these top-level origins: from `kyso browser-policy` when built, else by hand. */
async function deployPolicy(tmp, origins) {
  if (!process.env.KYSO_CLI) {
    writePolicy({ LocalNetworkAccessAllowedForUrls: origins, LoopbackNetworkAllowedForUrls: origins });
    return;
  }
  const config = join(tmp, 'kyso-agent.toml');
  writeFileSync(config, `[origins]\nallowed = ${JSON.stringify(origins)}\n`);
  const out = join(tmp, 'policy-root');
  await run(process.env.KYSO_CLI, ['browser-policy', 'write', '--config', config, '--root', out]);
  writePolicy(JSON.parse(readFileSync(join(out, 'etc/chromium/policies/managed/kyso-browser-policy.json'), 'utf8')));
}

test('lna_publicHttpsSite_blockedWithoutPermission_signsWithPolicy_iframeNeedsAllow', { skip, timeout: 240_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-lna-'));
  const { tls, pin } = makeCertificate(tmp);
  const framePage = (allow) =>
    `<!doctype html><meta charset="utf-8"><title>Cổng thông tin</title><iframe id="hocba" style="width:1300px;height:800px" src="https://${SITE}:PORT/?ports=AGENT"${allow ? ' allow="local-network-access; loopback-network"' : ''}></iframe>`;
  const pages = { '/portal-allow.html': framePage(true), '/portal-noallow.html': framePage(false) };
  const site = await startDemoServer({ port: 0, tls, pages });
  const siteOrigin = `https://${SITE}:${site.port}`;
  const portalOrigin = `https://${PORTAL}:${site.port}`;
  const agent = await startPrivateAgent('kyso-lna-agent-', ['--allow-origin', siteOrigin, '--log-level', 'debug']);
  /** The HTTP requests the agent read since `mark` (a length of its log). */
  const requestsSince = (mark) => agent.log().slice(mark).split('\n').filter((l) => /\[debug\] HTTP /.test(l));
  for (const k of Object.keys(pages)) pages[k] = pages[k].replace('PORT', site.port).replace('AGENT', agent.port);
  const args = [
    `--ip-address-space-overrides=127.0.0.1:${site.port}=public`,
    `--host-resolver-rules=MAP ${SITE} 127.0.0.1, MAP ${PORTAL} 127.0.0.1`,
    `--ignore-certificate-errors-spki-list=${pin}`,
  ];
  const watch = connectionWatch(agent.port);
  let browser;
  t.after(async () => {
    await browser?.close();
    removePolicy();
    await agent.stop();
    await site.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  const pageUrl = `${siteOrigin}/?ports=${agent.port}`;

  await t.test('without permission: the LNA state, and no request reaches the agent', async (st) => {
    removePolicy();
    browser = await launchBrowser({ args });
    const page = await browser.context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    const mark = agent.log().length;
    await watch.start();
    await page.goto(pageUrl);
    await page.evaluate(() => window.kysoDemo.ready);
    const reached = await watch.stop();
    if (reached.length) st.diagnostic(`TCP connections closed before any request (Chromium's LNA check runs once connected): ${reached.join(', ')}`);
    const err = await page.evaluate(() => window.kysoDemo.state.connectError);
    // The state was `prompt` when the page connected (the SDK then told it to point at the
    // browser's question); headless Chromium answers the question itself with Block, so the
    // state after the attempt is `denied`. Either way: an LNA code, never AGENT_NOT_FOUND.
    assert.ok(['LOCAL_NETWORK_PROMPT', 'LOCAL_NETWORK_DENIED'].includes(err?.code), `connect() reported ${JSON.stringify(err)}`);
    assert.equal(err.data.state, err.code === 'LOCAL_NETWORK_PROMPT' ? 'prompt' : 'denied');
    assert.equal(err.data.permission, 'loopback-network');
    assert.equal(await page.evaluate(() => window.kysoDemo.state.localNetworkPrompted), true, 'onLocalNetworkPrompt was not called');
    assert.match(await page.textContent('#notice'), err.code === 'LOCAL_NETWORK_PROMPT' ? /Cho phép/ : /Cài đặt trang web/);
    assert.ok(consoleLines.some((l) => l.includes('ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS')), `no LNA block in the console:\n${consoleLines.join('\n')}`);
    assert.deepEqual(requestsSince(mark), [], 'a blocked page must not reach the agent');
    assert.equal(await page.evaluate(async () => (await navigator.permissions.query({ name: 'loopback-network' })).state), err.data.state);
  });

  await t.test("with IT's managed policy: the homeroom teacher signs the class", async () => {
    await deployPolicy(tmp, [siteOrigin, portalOrigin]);
    await browser?.close(); // the first phase's (whatever it asserted: a leftover browser kept the test alive)
    browser = await launchBrowser({ args });
    const page = await browser.context.newPage();
    const mark = agent.log().length;
    await page.goto(pageUrl);
    await page.evaluate(() => window.kysoDemo.ready);
    const info = await page.evaluate(() => window.kysoDemo.state.info);
    assert.ok(info, `not connected: ${JSON.stringify(await page.evaluate(() => window.kysoDemo.state.connectError))}`);
    assert.equal(info.origin, siteOrigin);
    assert.equal(info.allowListed, true);
    await page.waitForFunction(() => window.kysoDemo.state.credentials.teacher.length > 0, null, { timeout: 30_000 });
    const cn = agent.manifest.credentials.find((c) => c.name === 'teacher').cn;
    const id = await page.evaluate((want) => window.kysoDemo.state.credentials.teacher.find((c) => c.certificate.commonName === want).id, cn);
    await page.selectOption('#cred-teacher', id);
    await page.click('#btn-teacher');
    await page.waitForFunction(() => window.kysoDemo.state.summaries.some((s) => s.role === 'teacher') && !window.kysoDemo.state.busy, null, { timeout: 120_000 });
    const summary = await page.evaluate(() => window.kysoDemo.state.summaries.find((s) => s.role === 'teacher'));
    assert.equal(summary.signed, students.length, JSON.stringify(summary));
    const sigs = await page.evaluate(() => window.kysoDemo.state.signatures);
    for (const student of students) {
      const sig = sigs[student.lookupCode]?.teacher;
      assert.ok(sig, `${student.fullName}: not signed`);
      const data = Buffer.from(JSON.stringify(transcriptOf(student)), 'utf8');
      assert.ok(verifySignature(sig.algorithm, data, sig.certificate, sig.signature), `${student.fullName}: signature does not verify`);
    }
    assert.ok(requestsSince(mark).some((l) => l.includes(`Origin '${siteOrigin}'`)), 'the agent logged no request from a page that signed: its log cannot be trusted');
    await page.close();
  });

  await t.test('in an iframe without allow="local-network-access": LOCAL_NETWORK_FRAME, nothing reaches the agent', async () => {
    const page = await browser.context.newPage();
    const mark = agent.log().length;
    await page.goto(`${portalOrigin}/portal-noallow.html`);
    const frame = await frameOf(page);
    const err = await frame.evaluate(() => window.kysoDemo.state.connectError);
    assert.equal(err?.code, 'LOCAL_NETWORK_FRAME', `connect() reported ${JSON.stringify(err)}`);
    assert.equal(err.data.frameAllowed, false);
    assert.deepEqual(requestsSince(mark), []);
    await page.close();
  });

  await t.test('in an iframe with allow="local-network-access; loopback-network": signs', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${portalOrigin}/portal-allow.html`);
    const frame = await frameOf(page);
    const info = await frame.evaluate(() => window.kysoDemo.state.info);
    assert.ok(info, `not connected: ${JSON.stringify(await frame.evaluate(() => window.kysoDemo.state.connectError))}`);
    assert.equal(info.origin, siteOrigin);
    const student = students[3];
    const cn = agent.manifest.credentials.find((c) => c.name === 'teacher').cn;
    const sig = await frame.evaluate(async ([key, want]) => {
      const { client, hashes } = window.kysoDemo.state;
      const creds = await client.listCredentials({ role: 'teacher' });
      const credentialId = creds.find((c) => c.certificate.commonName === want).id;
      return client.sign({ hash: hashes.get(key).bytes, title: `Học bạ ${key}` }, { role: 'teacher', credentialId });
    }, [student.lookupCode, cn]);
    const data = Buffer.from(JSON.stringify(transcriptOf(student)), 'utf8');
    assert.ok(verifySignature(sig.algorithm, data, sig.certificate, sig.signature));
    await page.close();
  });
});

/** The hocba frame of a portal page, once the demo in it finished starting. */
async function frameOf(page) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const frame = page.frames().find((f) => f.url().startsWith(`https://${SITE}:`));
    if (frame) {
      try {
        await frame.waitForFunction(() => window.kysoDemo, null, { timeout: 10_000 });
        await frame.evaluate(() => window.kysoDemo.ready);
        return frame;
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
    if (Date.now() > deadline) throw new Error('the iframe did not load');
    await new Promise((r) => setTimeout(r, 100));
  }
}
