// ./run demo's hands: opens the demo transcript page in headless Debian chromium and signs the
// class as a user would (pair, homeroom teacher batch, principal batch, seal), then saves a
// screenshot. The approvals come from the demo's scripted pinentry; its log shows every dialog.
// Then it signs the class's transcripts as files, XML and PDF, in the same three roles, and saves
// the signed files in FILES_DIR (hoc-ba-12A1-NN.xml / .pdf, plus signatures.json: which
// Signature Ids and fields each file carries) for the independent verifiers.
//   node demo/drive.mjs PAGE_URL AGENT_PORT MANIFEST_JSON SCREENSHOT_PNG [FILES_DIR]
import { readFileSync } from 'node:fs';
import { saveSignedFiles } from './verify-files.mjs';
import { launchBrowser } from '../test/browser.mjs';

const [url, agentPort, manifestPath, shot, filesDir] = process.argv.slice(2);
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const cnOf = (name) => manifest.credentials.find((c) => c.name === name).cn;

const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  await page.goto(`${url}?ports=${agentPort}`);
  await page.evaluate(() => window.kysoDemo.ready);
  const idle = () => !window.kysoDemo.state.busy;
  if (!(await page.evaluate(() => window.kysoDemo.state.info?.paired))) {
    await page.click('#btn-pair');
    await page.waitForFunction(() => window.kysoDemo.state.info?.paired === true && !window.kysoDemo.state.busy, null, { timeout: 30_000 });
    console.log(`  ghép nối / paired: code ${await page.textContent('#pair-code')}`);
  }
  await page.waitForFunction(() => ['teacher', 'principal', 'seal'].every((r) => window.kysoDemo.state.credentials[r].length > 0), null, { timeout: 15_000 });
  const creds = await page.evaluate(() => window.kysoDemo.state.credentials);
  for (const role of ['teacher', 'principal', 'seal']) {
    const id = creds[role].find((c) => c.certificate.commonName === cnOf(role)).id;
    await page.selectOption(`#cred-${role}`, id);
  }
  for (const [role, button, label] of [['teacher', '#btn-teacher', 'GVCN'], ['principal', '#btn-principal', 'Hiệu trưởng'], ['seal', '#btn-seal', 'Con dấu']]) {
    const since = Date.now();
    await page.click(button);
    await page.waitForFunction((r) => window.kysoDemo.state.summaries.some((s) => s.role === r) && !window.kysoDemo.state.busy, role, { timeout: 120_000 });
    const s = await page.evaluate((r) => window.kysoDemo.state.summaries.filter((x) => x.role === r).at(-1), role);
    console.log(`  ${label.padEnd(12)} ${s.signed}/${s.total} đã ký / signed, ${s.failed} lỗi / failed, ${Date.now() - since} ms`);
    if (s.failed > 0 || s.signed !== s.total) process.exitCode = 1;
  }
  for (const format of ['xml', 'pdf']) {
    for (const [role, label] of [['teacher', 'GVCN'], ['principal', 'Hiệu trưởng'], ['seal', 'Con dấu']]) {
      const before = await page.evaluate(() => window.kysoDemo.state.summaries.length);
      await page.click(`#btn-${format}-${role}`);
      await page.waitForFunction((n) => window.kysoDemo.state.summaries.length > n && !window.kysoDemo.state.busy, before, { timeout: 180_000 });
      const s = await page.evaluate(() => window.kysoDemo.state.summaries.at(-1));
      console.log(`  ${format.toUpperCase()} ${label.padEnd(12)} ${s.signed}/${s.total} tệp đã ký / files signed, ${s.failed} lỗi / failed, ${s.ms} ms`);
      if (s.failed > 0 || s.signed !== s.total || s.format !== format) process.exitCode = 1;
    }
  }
  await page.waitForFunction(idle, null, { timeout: 10_000 });
  await page.screenshot({ path: shot, fullPage: true });
  if (filesDir) {
    const n = await saveSignedFiles(page, filesDir);
    console.log(`  ${n} tệp đã ký / signed files: ${filesDir}`);
  }
} finally {
  await browser.close();
}
