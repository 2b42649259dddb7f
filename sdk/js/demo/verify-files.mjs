// Checks the demo's signed transcript files with independent tools, as a receiving school or
// the education department would: xmlsec1 --verify for every XML signature in place (GVCN,
// Hiệu trưởng, con dấu), pdfsig (poppler) for every PDF signature plus qpdf --check.
//   node demo/verify-files.mjs FILES_DIR ROOT_CA_PEM ISSUING_CA_PEM
// FILES_DIR holds the files and signatures.json written by demo/drive.mjs.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function tool(cmd, args) {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, out: stdout + stderr };
  } catch (e) {
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.code === 'ENOENT' ? `${cmd} is not installed` : ''}` };
  }
}

/** Runs `jobs` (functions returning promises) four at a time. */
async function pool(jobs, width = 4) {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]();
      }
    }),
  );
  return results;
}

/**
 * Saves the demo page's files (its state.files) into `dir`: hoc-ba-12A1-NN.xml / .pdf and
 * signatures.json ({file: {roles, ids}}). `page` is a playwright page. Returns the file count.
 */
export async function saveSignedFiles(page, dir) {
  mkdirSync(dir, { recursive: true });
  const files = await page.evaluate(async () => {
    const { state, students } = window.kysoDemo;
    const b64 = (bytes) => {
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const out = [];
    for (const format of ['xml', 'pdf']) {
      for (const st of students) {
        const f = state.files[format].get(st.lookupCode);
        out.push({ name: `hoc-ba-12A1-${String(st.no).padStart(2, '0')}.${format}`, data: b64(f.bytes), roles: f.roles, ids: f.ids });
      }
    }
    return out;
  });
  const index = {};
  for (const f of files) {
    writeFileSync(join(dir, f.name), Buffer.from(f.data, 'base64'));
    index[f.name] = { roles: f.roles, ids: f.ids };
  }
  writeFileSync(join(dir, 'signatures.json'), JSON.stringify(index, null, 1));
  return files.length;
}

/**
 * Verifies every file listed in FILES_DIR/signatures.json. Returns {xml: {files, signatures,
 * valid}, pdf: {files, signatures, valid, qpdf}, failures: [{file, what, out}]}.
 */
export async function verifySignedFiles(dir, rootPem, subPem) {
  const index = JSON.parse(readFileSync(join(dir, 'signatures.json'), 'utf8'));
  const report = { xml: { files: 0, signatures: 0, valid: 0 }, pdf: { files: 0, signatures: 0, valid: 0, qpdf: 0 }, failures: [] };
  const jobs = [];
  for (const [name, { ids }] of Object.entries(index)) {
    const file = join(dir, name);
    if (name.endsWith('.xml')) {
      report.xml.files++;
      for (const id of ids) {
        report.xml.signatures++;
        jobs.push(async () => {
          const r = await tool('xmlsec1', [
            '--verify', '--trusted-pem', rootPem, '--untrusted-pem', subPem,
            '--id-attr:Id', 'HocBa', '--id-attr:Id', 'DuLieuHocBa',
            '--node-xpath', `//*[@Id='${id}']`, file,
          ]);
          if (r.ok) report.xml.valid++;
          else report.failures.push({ file: name, what: `xmlsec1 --verify ${id}`, out: r.out });
        });
      }
    } else if (name.endsWith('.pdf')) {
      report.pdf.files++;
      report.pdf.signatures += ids.length;
      jobs.push(async () => {
        const r = await tool('pdfsig', [file]);
        const valid = (r.out.match(/Signature is Valid/g) ?? []).length;
        report.pdf.valid += valid;
        if (valid !== ids.length) report.failures.push({ file: name, what: `pdfsig: ${valid}/${ids.length} valid`, out: r.out });
      });
      jobs.push(async () => {
        const r = await tool('qpdf', ['--check', file]);
        if (r.ok) report.pdf.qpdf++;
        else report.failures.push({ file: name, what: 'qpdf --check', out: r.out });
      });
    }
  }
  await pool(jobs);
  return report;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, rootPem, subPem] = process.argv.slice(2);
  const r = await verifySignedFiles(dir, rootPem, subPem);
  console.log(`  XML: ${r.xml.valid}/${r.xml.signatures} chữ ký hợp lệ theo xmlsec1 / signatures valid in xmlsec1 (${r.xml.files} tệp / files)`);
  console.log(`  PDF: ${r.pdf.valid}/${r.pdf.signatures} chữ ký hợp lệ theo pdfsig / signatures valid in pdfsig, qpdf --check ${r.pdf.qpdf}/${r.pdf.files}`);
  for (const f of r.failures.slice(0, 5)) console.log(`  ✗ ${f.file}: ${f.what}\n${f.out.split('\n').slice(0, 6).join('\n')}`);
  if (r.failures.length > 0) process.exitCode = 1;
}
