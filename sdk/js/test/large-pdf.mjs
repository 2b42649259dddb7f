// Measures a large PDF through the real agent with the SDK (Node, no browser): upload in chunks,
// PAdES signing streamed from the agent's transfer directory, download in chunks. Prints the
// times and the agent's peak RSS (VmHWM) before and after, and checks the result with pdfsig
// and qpdf. Not part of ctest (a 200 MB file takes a while on a loaded machine).
//   KYSO_AGENT_BIN=build/agent/kyso-agent KYSO_TEST_DIR=build/test-pki \
//     node --experimental-websocket test/large-pdf.mjs [MEGABYTES=200]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../dist/index.js';
import { startPrivateAgent } from './private-agent.mjs';

const megabytes = Number(process.argv[2] ?? 200);

/** A one-page PDF with an unreferenced padding stream of `padding` bytes (classic xref). */
function bigPdf(padding) {
  const content = 'BT /F1 14 Tf 56 780 Td (Hoc ba so - ban lon) Tj ET\n';
  const parts = [];
  let size = 0;
  const offsets = [];
  const push = (x) => {
    const b = typeof x === 'string' ? Buffer.from(x, 'latin1') : x;
    parts.push(b);
    size += b.length;
  };
  const obj = (n, body) => {
    offsets[n] = size;
    push(`${n} 0 obj\n${body}\nendobj\n`);
  };
  push('%PDF-1.7\n%\xE2\xE3\xCF\xD3\n');
  obj(1, '<< /Type /Catalog /Pages 2 0 R >>');
  obj(2, '<< /Type /Pages /Kids [3 0 R] /Count 1 >>');
  obj(3, '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>');
  obj(4, '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  obj(5, `<< /Length ${content.length} >>\nstream\n${content}endstream`);
  offsets[6] = size;
  push(`6 0 obj\n<< /Length ${padding} >>\nstream\n`);
  push(Buffer.alloc(padding, 0x20));
  push('\nendstream\nendobj\n');
  const xref = size;
  push(`xref\n0 7\n0000000000 65535 f \n${offsets.slice(1).map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`);
  push(`trailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return new Uint8Array(Buffer.concat(parts));
}

const vmHwm = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const a = await startPrivateAgent('kyso-large-pdf-');
const { agent, tmp } = a;
try {
  const client = await connect({ ports: [a.port], WebSocket: a.WebSocket, maxMessageBytes: 1000 * 1024 });
  const rssIdle = vmHwm(agent.pid);
  const pdf = bigPdf(megabytes * 1024 * 1024);
  const t0 = performance.now();
  const up = await client.upload(pdf);
  await client.releaseUpload(up.uploadId);
  const t1 = performance.now();
  const signed = await client.signDocument(
    { type: 'pdf', document: pdf, title: `Học bạ (${megabytes} MB)` },
    { role: 'teacher', uploadAboveBytes: 0 },
  );
  const t2 = performance.now();
  const rssPeak = vmHwm(agent.pid);
  client.close();
  const out = join(tmp, 'signed.pdf');
  writeFileSync(out, signed.document);
  const pdfsig = execFileSync('pdfsig', [out], { encoding: 'utf8' });
  execFileSync('qpdf', ['--check', out], { stdio: 'ignore' });
  console.log(`PDF ${pdf.length} bytes (${megabytes} MiB), upload alone ${Math.round(t1 - t0)} ms (${up.uploadId});` +
    ` upload + sign + download ${Math.round(t2 - t1)} ms; signed ${signed.size} bytes;` +
    ` pdfsig ${/Signature is Valid/.test(pdfsig) ? 'valid' : 'NOT valid'}, qpdf --check ok`);
  console.log(`kyso-agent peak RSS (VmHWM): ${rssIdle.toFixed(1)} MiB after start, ${rssPeak.toFixed(1)} MiB after the ${megabytes} MiB PDF`);
} finally {
  await a.stop();
}
