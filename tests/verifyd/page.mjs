// kyso-verifyd's page in headless Debian chromium: drops a signed transcript on the drop zone
// (a real drop event carrying the file), reads the verdict in Vietnamese, switches to English,
// reads it again, and saves a screenshot.
//   node page.mjs URL FILE SCREENSHOT.png
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { launchBrowser } from '../../sdk/js/test/browser.mjs';

const [url, file, shot] = process.argv.slice(2);
const browser = await launchBrowser();
try {
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => { console.log(`page error: ${e.message}`); process.exitCode = 1; });
  await page.setViewportSize({ width: 760, height: 940 });
  await page.goto(url);
  console.log(`title: ${await page.title()}`);
  const bytes = readFileSync(file).toString('base64');
  const transfer = await page.evaluateHandle(([b64, name]) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([raw], name, { type: 'application/pdf' }));
    return dt;
  }, [bytes, basename(file)]);
  await page.dispatchEvent('#drop', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer });
  await page.waitForSelector('#verdict h2', { timeout: 60000 });
  console.log(`vi: ${await page.textContent('#verdict h2')}`);
  console.log(`vi detail: ${await page.textContent('#verdict p')}`);
  const first = await page.textContent('#signatures li h3');
  console.log(`signer: ${first}`);
  console.log(`first: ${await page.textContent('#signatures li')}`);
  await page.screenshot({ path: shot });
  await page.click('#lang');
  console.log(`en: ${await page.textContent('#verdict h2')}`);
} finally {
  await browser.close();
}
