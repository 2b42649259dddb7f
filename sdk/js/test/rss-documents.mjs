// The agent's memory before and after its first document items: kyso-agent loads the XML/PDF
// module (kyso-formats-documents.so, with libxml2, qpdf, HarfBuzz behind it) only then. Prints
// VmRSS 1 s after start (idle, as bench/agent-sign measures it), after one hash signature, and
// after one PDF and one XML item (verified with pdfsig and xmlsec1), with the module's mapping,
// and how long the first PDF request takes (it loads the module) against the next one.
// Not part of ctest.
//   KYSO_AGENT_BIN=build/agent/kyso-agent KYSO_TEST_DIR=build/test-pki \
//     node --experimental-websocket test/rss-documents.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { connect } from '../dist/index.js';
import { startPrivateAgent } from './private-agent.mjs';

function smallPdf() {
  const content = 'BT /F1 14 Tf 56 780 Td (Hoc ba so) Tj ET\n';
  let out = '%PDF-1.7\n';
  const offsets = [];
  const obj = (n, body) => {
    offsets[n] = out.length;
    out += `${n} 0 obj\n${body}\nendobj\n`;
  };
  obj(1, '<< /Type /Catalog /Pages 2 0 R >>');
  obj(2, '<< /Type /Pages /Kids [3 0 R] /Count 1 >>');
  obj(3, '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>');
  obj(4, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  obj(5, `<< /Length ${content.length} >>\nstream\n${content}endstream`);
  const xref = out.length;
  out += `xref\n0 6\n0000000000 65535 f \n${offsets.slice(1).map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return new Uint8Array(Buffer.from(out, 'latin1'));
}

const XML = '<?xml version="1.0" encoding="UTF-8"?>\n<HocBa Id="hb1"><DuLieuHocBa Id="hb1-dl">' +
  '<HoTen>Nguyễn Văn An</HoTen><Lop>10A1</Lop></DuLieuHocBa></HocBa>\n';

const status = (pid, key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const mapped = (pid, name) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes(name);

const a = await startPrivateAgent('kyso-rss-', ['--log-level', 'warn']);
const { agent, tmp, manifest } = a;
try {
  await new Promise((r) => setTimeout(r, 1000));
  const idle = status(agent.pid, 'VmRSS');
  const idleMapped = mapped(agent.pid, 'kyso-formats-documents.so');
  const client = await connect({ ports: [a.port], WebSocket: a.WebSocket });
  const digest = createHash('sha256').update('Học bạ').digest();
  await client.sign({ type: 'hash', hash: new Uint8Array(digest), title: 'Học bạ (mã băm)' }, { role: 'teacher' });
  const afterHash = status(agent.pid, 'VmRSS');
  const hashMapped = mapped(agent.pid, 'kyso-formats-documents.so');
  let t0 = performance.now();
  const pdf = await client.signPdf(smallPdf(), { role: 'teacher', title: 'Học bạ PDF' });
  const firstPdfMs = performance.now() - t0;
  const xml = await client.signXml(XML, { role: 'teacher', title: 'Học bạ XML', reference: 'hb1-dl', container: 'ChuKyGVCN' });
  await new Promise((r) => setTimeout(r, 200));
  const afterDocs = status(agent.pid, 'VmRSS');
  const hwm = status(agent.pid, 'VmHWM');
  const docsMapped = mapped(agent.pid, 'kyso-formats-documents.so') && mapped(agent.pid, 'libqpdf');
  // The same request again, with the module loaded: the difference is the one-off load.
  t0 = performance.now();
  await client.signPdf(smallPdf(), { role: 'teacher', title: 'Học bạ PDF (lần 2)' });
  const secondPdfMs = performance.now() - t0;
  client.close();
  writeFileSync(join(tmp, 'signed.pdf'), pdf.document);
  writeFileSync(join(tmp, 'signed.xml'), xml.document);
  const pdfsig = execFileSync('pdfsig', [join(tmp, 'signed.pdf')], { encoding: 'utf8' });
  execFileSync('xmlsec1', ['--verify', '--trusted-pem', manifest.pki.root,
    '--untrusted-pem', manifest.pki.sub, '--id-attr:Id', 'DuLieuHocBa',
    join(tmp, 'signed.xml')], { stdio: 'ignore' });
  console.log(`kyso-agent VmRSS: idle ${idle.toFixed(1)} MiB (module mapped: ${idleMapped}); after a hash ` +
    `signature ${afterHash.toFixed(1)} MiB (module mapped: ${hashMapped}); after one PDF + one XML item ` +
    `${afterDocs.toFixed(1)} MiB, peak ${hwm.toFixed(1)} MiB (module and qpdf mapped: ${docsMapped}); ` +
    `pdfsig ${/Signature is Valid/.test(pdfsig) ? 'valid' : 'NOT valid'}, xmlsec1 --verify ok; ` +
    `first PDF request ${firstPdfMs.toFixed(1)} ms (loads the module), the next ${secondPdfMs.toFixed(1)} ms ` +
    '(both with the scripted dialog and C_Login)');
} finally {
  await a.stop();
}
