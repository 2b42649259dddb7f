// The demo page in headless Debian chromium against the scripted fake agent (test/fake-agent.mjs)
// holding real keys (test/fake-signer.mjs): the page's own behaviour without the C++ agent:
// pairing code, per-student statuses and signers, progress, a batch cut short by a removed token
// (exactly the signed students are marked), Vietnamese errors, and the page's WebCrypto check of
// RSA PKCS#1 v1.5, RSA-PSS and ECDSA signatures (a wrong one is flagged).
// Run: npm run build && node --test test/page.test.mjs   (KYSO_E2E_SHOTS=dir keeps screenshots)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeAgent, helloResult } from './fake-agent.mjs';
import { makeFakeSigner } from './fake-signer.mjs';
import { startDemoServer } from '../demo/serve.mjs';
import { students } from '../demo/class-data.js';
import { launchBrowser } from './browser.mjs';

const PAIR_CODE = '482 915';
const SEAL_TOKEN_REMOVED_AT = 37; // the seal batch loses its token after 37 items
const TAMPERED = students[4].lookupCode; // its teacher signature is made over another digest

const tokenRemoved = {
  code: 'TOKEN_REMOVED',
  message: {
    vi: 'Token đã bị rút ra trong khi ký. Hãy cắm lại token và ký lại các văn bản chưa ký.',
    en: 'The token was removed while signing. Plug it back in and sign the remaining documents.',
  },
  retriable: true,
};

const cancelledError = {
  code: 'USER_CANCELLED',
  message: { vi: 'Người dùng đã hủy thao tác.', en: 'The user cancelled.' },
  retriable: true,
};

function fakeAgentHandler(signer, titles) {
  let paired = false;
  const cancels = new Set();
  const result = (role, signature) => {
    const c = signer.creds[role];
    return { signature, algorithm: c.algorithm, credentialId: c.credential.id, certificate: c.credential.certificateDer, chain: [] };
  };
  return async (m, conn) => {
    switch (m.method) {
      case 'hello':
        return conn.send({ id: m.id, result: { ...helloResult, origin: conn.request.headers.origin, paired } });
      case 'pair':
        conn.send({ event: 'pair.code', id: m.id, params: { code: PAIR_CODE, expiresIn: 120 } });
        await new Promise((r) => setTimeout(r, 300)); // the user compares the codes
        paired = true;
        return conn.send({ id: m.id, result: { paired: true, origin: conn.request.headers.origin } });
      case 'credentials.list':
        if (!paired) break;
        return conn.send({ id: m.id, result: { credentials: [signer.creds[m.params.role].credential] } });
      case 'sign': {
        titles.push(m.params.item.title);
        const tampered = m.params.item.title.endsWith(students.find((s) => s.lookupCode === TAMPERED).fullName);
        const hash = tampered ? createHash('sha256').update('another transcript').digest('base64') : m.params.item.hash;
        return conn.send({ id: m.id, result: { ...result(m.params.role, signer.sign(m.params.role, hash)), hash: Buffer.from(m.params.item.hash, 'base64').toString('hex') } });
      }
      case 'batch.cancel':
        cancels.add(m.params.batchId);
        return conn.send({ id: m.id, result: { cancelled: true } });
      case 'batch.sign': {
        const { role, items } = m.params;
        titles.push(...items.map((i) => i.title));
        const results = [];
        for (const [index, item] of items.entries()) {
          if (cancels.has(m.id)) {
            results.push({ index, ok: false, error: cancelledError });
            conn.send({ event: 'batch.progress', id: m.id, params: { done: index + 1, total: items.length, index, ok: false, error: cancelledError } });
            continue;
          }
          const ok = !(role === 'seal' && index >= SEAL_TOKEN_REMOVED_AT);
          const tampered = role === 'teacher' && item.title.endsWith(students.find((s) => s.lookupCode === TAMPERED).fullName);
          const hash = tampered ? createHash('sha256').update('another transcript').digest('base64') : item.hash;
          const r = ok ? { index, ok, signature: signer.sign(role, hash) } : { index, ok, error: tokenRemoved };
          results.push(r);
          conn.send({ event: 'batch.progress', id: m.id, params: { done: index + 1, total: items.length, index, ok, ...(ok ? {} : { error: tokenRemoved }) } });
          await new Promise((r) => setTimeout(r, role === 'principal' ? 25 : 5));
        }
        const signed = results.filter((r) => r.ok).length;
        const base = result(role, '');
        delete base.signature;
        return conn.send({ id: m.id, result: { total: items.length, signed, failed: items.length - signed, cancelled: cancels.has(m.id), ...base, results } });
      }
      default:
        break;
    }
    conn.send({ id: m.id, error: { code: 'ORIGIN_NOT_PAIRED', message: { vi: 'Trang web này chưa được ghép nối với Kyso.', en: 'Not paired.' }, retriable: true } });
  };
}

test('demoPage_againstFakeAgent_statusesSignersProgressErrorsAndPageSideVerification', { timeout: 120_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-page-'));
  const shots = process.env.KYSO_E2E_SHOTS ?? tmp;
  mkdirSync(shots, { recursive: true });
  const signer = makeFakeSigner();
  const titles = [];
  const agent = await startFakeAgent({ handler: fakeAgentHandler(signer, titles) });
  const demo = await startDemoServer({ port: 0 });
  const browser = await launchBrowser();
  const idle = () => page.waitForFunction(() => !window.kysoDemo.state.busy, null, { timeout: 30_000 });
  let page;
  try {
    page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${demo.url}?ports=${agent.port}`);
    await page.evaluate(() => window.kysoDemo.ready);
    assert.match(await page.textContent('#origin-status'), /chưa ghép nối/);
    assert.equal(await page.isDisabled('#btn-teacher'), true);

    await page.click('#btn-pair');
    await page.waitForSelector('#pair-box:not([hidden])');
    assert.equal(await page.textContent('#pair-code'), PAIR_CODE);
    await page.screenshot({ path: join(shots, 'page-1-pairing.png') });
    await idle();
    assert.equal(await page.isHidden('#pair-box'), true);
    assert.match(await page.textContent('#notice'), /Đã ghép nối/);

    await page.click(`[data-sign-one="${students[0].lookupCode}"]`);
    await idle();
    await page.click('#btn-teacher');
    await idle();
    // The principal stops the first batch with "Dừng", then signs the rest in a second one.
    await page.click('#btn-principal');
    await page.waitForFunction(() => window.kysoDemo.state.progressEvents.filter((e) => e.role === 'principal').length >= 5);
    await page.click('#btn-cancel');
    await idle();
    const stopped = await page.evaluate(() => window.kysoDemo.state.summaries.at(-1));
    assert.equal(stopped.cancelled, true);
    assert.ok(stopped.signed >= 5 && stopped.signed < 40, `signed ${stopped.signed}`);
    assert.match(await page.textContent('#notice'), /\(đã dừng\)/);
    await page.click('#btn-principal');
    await idle();
    await page.click('#btn-seal');
    await idle();
    await page.screenshot({ path: join(shots, 'page-2-sealed.png') });

    const st = await page.evaluate(() => {
      const s = window.kysoDemo.state;
      return { signatures: s.signatures, errors: s.errors, progress: s.progressEvents, summaries: s.summaries };
    });
    assert.equal(titles[0], `Học bạ 12A1 - ${students[0].fullName}`);
    const k = st.summaries[1].signed; // signed before "Dừng"
    assert.deepEqual(st.summaries.map((s) => [s.role, s.total, s.signed, s.failed]), [
      ['teacher', 39, 39, 0], ['principal', 40, k, 40 - k], ['principal', 40 - k, 40 - k, 0], ['seal', 40, 37, 3],
    ]);
    const first = st.progress.filter((e) => e.role === 'principal' && e.batchId === st.summaries[1].batchId);
    assert.deepEqual(first.map((e) => e.done), Array.from({ length: 40 }, (_, i) => i + 1));
    // Exactly the students the token signed before it was removed carry the seal.
    const sealed = students.filter((s) => st.signatures[s.lookupCode]?.seal).map((s) => s.no);
    assert.deepEqual(sealed, Array.from({ length: 37 }, (_, i) => i + 1));
    assert.deepEqual(Object.entries(st.errors).map(([, e]) => e.code), ['TOKEN_REMOVED', 'TOKEN_REMOVED', 'TOKEN_REMOVED']);
    const rows = await page.$$eval('#rows tr', (trs) => trs.map((tr) => tr.querySelector('.badge').textContent));
    assert.equal(rows.filter((r) => r === 'Đã đóng dấu').length, 37);
    assert.equal(rows.filter((r) => r === 'Hiệu trưởng đã ký').length, 3);
    const notice = await page.textContent('#notice');
    assert.match(notice, /Đã đóng dấu 37\/40 học bạ/);
    assert.match(notice, /Token đã bị rút ra/);
    assert.match(notice, new RegExp(students[39].fullName));
    assert.match(await page.textContent('#rows'), /Lỗi đóng dấu/);

    // The page's own WebCrypto check: RSA (teacher), RSA-PSS (principal), ECDSA (seal).
    const checks = [];
    for (const s of students) {
      for (const [role, sig] of Object.entries(st.signatures[s.lookupCode] ?? {})) checks.push([s.lookupCode, role, sig.algorithm, sig.valid]);
    }
    assert.equal(checks.length, 40 + 40 + 37);
    const wrong = checks.filter(([k, , , v]) => v !== true);
    assert.deepEqual(wrong, [[TAMPERED, 'teacher', 'rsa-sha256', false]]);
    assert.deepEqual([...new Set(checks.map((c) => c[2]))].sort(), ['ecdsa-sha256', 'rsa-pss-sha256', 'rsa-sha256']);
    assert.match(await page.textContent(`tr[data-key="${TAMPERED}"] .signers`), /không hợp lệ/);
    assert.match(await page.textContent(`tr[data-key="${students[0].lookupCode}"] .signers`), /Nguyễn Thị Ánh ✓/);
    assert.deepEqual(errors, []);
  } catch (e) {
    if (page) await page.screenshot({ path: join(shots, 'page-failure.png'), fullPage: true }).catch(() => {});
    console.error(`screenshots: ${shots}`);
    throw e;
  } finally {
    await browser.close();
    await demo.close();
    await agent.close();
    signer.close();
    if (!process.env.KYSO_E2E_SHOTS) rmSync(tmp, { recursive: true, force: true });
  }
});
