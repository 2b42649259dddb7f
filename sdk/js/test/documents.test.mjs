// Unit tests of the SDK's document helpers (signXml, signPdf, signCms, signDocuments, upload,
// download) against the scripted fake agent: the wire format of docs/protocol.md "Document
// items" and "Uploads and downloads", checks of what comes back, and nothing sent for bad items.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, KysoError } from '../dist/index.js';
import { startFakeAgent, defaultHandler } from './fake-agent.mjs';

const hex = (b) => createHash('sha256').update(b).digest('hex');
const b64 = (b) => Buffer.from(b).toString('base64');
const common = { algorithm: 'rsa-sha256', credentialId: 'c'.repeat(64), certificate: 'MIIB', chain: [] };

/** A fake agent that keeps uploads and downloads like the real one (in memory). */
function transferAgent(onSign) {
  const uploads = new Map();
  const downloads = new Map();
  const log = [];
  const handler = (msg, conn) => {
    log.push(msg);
    const p = msg.params ?? {};
    const ok = (result) => conn.send({ id: msg.id, result });
    switch (msg.method) {
      case 'hello':
        return defaultHandler(msg, conn);
      case 'upload.begin':
        uploads.set('u-1', { size: p.size, sha256: p.sha256, parts: [], done: false });
        return ok({ uploadId: 'u-1', chunkSize: 100_000 });
      case 'upload.chunk': {
        const u = uploads.get(p.uploadId);
        const got = u.parts.reduce((n, x) => n + x.length, 0);
        assert.equal(p.offset, got, 'chunks arrive in order');
        u.parts.push(Buffer.from(p.data, 'base64'));
        return ok({ uploadId: p.uploadId, received: got + u.parts.at(-1).length, size: u.size });
      }
      case 'upload.end': {
        const u = uploads.get(p.uploadId);
        const all = Buffer.concat(u.parts);
        assert.equal(hex(all), u.sha256);
        u.done = true;
        u.bytes = all;
        return ok({ uploadId: p.uploadId, size: all.length, sha256: hex(all) });
      }
      case 'upload.abort':
        return ok({ uploadId: p.uploadId, aborted: uploads.delete(p.uploadId) });
      case 'download.chunk': {
        const d = downloads.get(p.downloadId);
        const part = d.subarray(p.offset, p.offset + 70_000);
        return ok({ downloadId: p.downloadId, offset: p.offset, data: b64(part), eof: p.offset + part.length === d.length });
      }
      case 'download.end':
        return ok({ downloadId: p.downloadId, released: downloads.delete(p.downloadId) });
      default:
        return onSign(msg, conn, { uploads, downloads });
    }
  };
  return { handler, log, uploads, downloads };
}

async function withAgent(fake, fn) {
  const agent = await startFakeAgent({ handler: fake.handler });
  const client = await connect({ ports: [agent.port] });
  try {
    await fn(client, agent);
  } finally {
    client.close();
    await agent.close();
  }
}

test('signXml_smallDocument_sentAsTextWithPlacement_returnsCheckedBytes', async () => {
  const xml = '<HocBa Id="hb-01"><DuLieuHocBa Id="hb-01-dl">Toán 8,5</DuLieuHocBa></HocBa>';
  const signed = Buffer.from(xml.replace('</HocBa>', '<ChuKyHieuTruong><Signature/></ChuKyHieuTruong></HocBa>'));
  const fake = transferAgent((msg, conn) => {
    conn.send({ id: msg.id, result: { ...common, document: b64(signed), size: signed.length, sha256: hex(signed), signatureId: 'sig-1' } });
  });
  await withAgent(fake, async (client) => {
    const r = await client.signXml(xml, {
      role: 'principal',
      title: 'Học bạ - Nguyễn Văn An',
      reference: 'hb-01-dl',
      parent: 'hb-01',
      container: 'ChuKyHieuTruong',
      profile: 'xades-b-b',
    });
    assert.equal(Buffer.from(r.document).toString(), signed.toString());
    assert.equal(r.signatureId, 'sig-1');
    assert.equal(r.sha256, hex(signed));
  });
  const sign = fake.log.find((m) => m.method === 'sign');
  assert.deepEqual(sign.params, {
    role: 'principal',
    item: {
      type: 'xml',
      title: 'Học bạ - Nguyễn Văn An',
      text: xml,
      reference: 'hb-01-dl',
      parent: 'hb-01',
      container: 'ChuKyHieuTruong',
      profile: 'xades-b-b',
    },
  });
});

test('signPdf_largeDocument_uploadedInChunks_resultDownloadedAndUploadReleased', async () => {
  const pdf = Buffer.alloc(700_000, 7);
  pdf.write('%PDF-1.7\n', 0);
  const signed = Buffer.concat([pdf, Buffer.from('\n% signed revision\n%%EOF\n')]);
  const fake = transferAgent((msg, conn, { uploads, downloads }) => {
    assert.equal(msg.params.item.uploadId, 'u-1');
    assert.equal(msg.params.item.document, undefined);
    assert.deepEqual(msg.params.item.visible, { x: 212, y: 40 });
    assert.equal(msg.params.item.level, 'b-b');
    assert.ok(uploads.get('u-1').done);
    downloads.set('d-1', signed);
    conn.send({ id: msg.id, result: { ...common, downloadId: 'd-1', size: signed.length, sha256: hex(signed), fieldName: 'Signature1' } });
  });
  const progress = [];
  await withAgent(fake, async (client) => {
    const r = await client.signPdf(new Uint8Array(pdf), {
      role: 'teacher',
      title: 'Học bạ (PDF)',
      level: 'b-b',
      visible: { x: 212, y: 40 },
      onUpload: (p) => progress.push(p.done),
    });
    assert.equal(r.size, signed.length);
    assert.ok(Buffer.from(r.document).equals(signed));
    assert.equal(r.fieldName, 'Signature1');
    await new Promise((res) => setTimeout(res, 50));
  });
  const methods = fake.log.map((m) => m.method);
  assert.equal(methods.filter((m) => m === 'upload.chunk').length, Math.ceil(pdf.length / 100_000));
  assert.ok(methods.includes('upload.end'));
  assert.ok(methods.filter((m) => m === 'download.chunk').length >= 10);
  assert.ok(methods.includes('download.end'));
  assert.ok(methods.includes('upload.abort'), 'the upload is released after signing');
  assert.equal(progress.at(-1), pdf.length);
});

test('signDocuments_batch_summaryNamesSignedDocumentsAndPerItemErrors', async () => {
  const docs = ['<a Id="x"/>', '<b Id="y"/>', 'not xml'];
  const fake = transferAgent((msg, conn) => {
    assert.equal(msg.method, 'batch.sign');
    const items = msg.params.items;
    assert.equal(items.length, 3);
    items.forEach((it, index) => conn.send({ event: 'batch.progress', id: msg.id, params: { done: index + 1, total: 3, index, ok: index < 2 } }));
    conn.send({
      id: msg.id,
      result: {
        ...common,
        total: 3,
        signed: 2,
        failed: 1,
        cancelled: false,
        results: [
          { index: 0, ok: true, document: b64(docs[0]), size: docs[0].length, sha256: hex(docs[0]), signatureId: 's0' },
          { index: 1, ok: true, document: b64(docs[1]), size: docs[1].length, sha256: hex(docs[1]), signatureId: 's1' },
          { index: 2, ok: false, error: { code: 'DOCUMENT_INVALID', message: { vi: 'hỏng', en: 'broken' }, retriable: false } },
        ],
      },
    });
  });
  const seen = [];
  await withAgent(fake, async (client) => {
    const s = await client.signDocuments(
      docs.map((d, i) => ({ type: 'xml', document: d, reference: 'x', title: `HS ${i}`, key: i })),
      { role: 'teacher', onProgress: (p) => seen.push([p.index, p.ok, p.item.key]) },
    );
    assert.equal(s.signed, 2);
    assert.deepEqual(s.succeeded.map((r) => r.item.key), [0, 1]);
    assert.equal(Buffer.from(s.succeeded[1].document).toString(), docs[1]);
    assert.equal(s.failures[0].error.code, 'DOCUMENT_INVALID');
    assert.equal(s.failures[0].index, 2);
  });
  assert.deepEqual(seen, [[0, true, 0], [1, true, 1], [2, false, 2]]);
});

test('signDocument_resultWithWrongHash_rejectsProtocolError', async () => {
  const fake = transferAgent((msg, conn) => {
    conn.send({ id: msg.id, result: { ...common, document: b64('tampered'), size: 8, sha256: hex('original') } });
  });
  await withAgent(fake, async (client) => {
    await assert.rejects(
      client.signCms({ document: '{"hocBa":1}' }, { role: 'seal', title: 'Gói', detached: false }),
      (e) => e instanceof KysoError && e.code === 'PROTOCOL_ERROR',
    );
  });
});

test('signDocuments_summaryWithATamperedOrMissingDocument_failsThoseItemsOnly', async () => {
  const docs = ['<a Id="x">0</a>', '<a Id="x">1</a>', '<a Id="x">2</a>'];
  const fake = transferAgent((msg, conn) => {
    conn.send({
      id: msg.id,
      result: {
        ...common,
        results: [
          { index: 0, ok: true, document: b64(docs[0]), size: docs[0].length, sha256: hex(docs[0]), signatureId: 's0' },
          { index: 1, ok: true, document: b64('tampered'), size: 8, sha256: hex(docs[1]) },
        ],
      },
    });
  });
  await withAgent(fake, async (client) => {
    const s = await client.signDocuments(
      docs.map((d, i) => ({ type: 'xml', document: d, reference: 'x', title: `HS ${i}`, key: i })),
      { role: 'teacher' },
    );
    assert.deepEqual(s.results.map((r) => [r.index, r.item.key, r.ok]), [[0, 0, true], [1, 1, false], [2, 2, false]]);
    assert.equal(Buffer.from(s.results[0].document).toString(), docs[0]);
    assert.equal(s.results[0].signatureId, 's0');
    assert.equal(s.results[1].error.code, 'PROTOCOL_ERROR');
    assert.match(s.results[1].error.detail, /SHA-256 differs/);
    assert.match(s.results[2].error.detail, /no result for item 2/);
    assert.deepEqual([s.total, s.signed, s.failed], [3, 1, 2]);
  });
});

test('signDocument_malformedItems_rejectedBeforeAnythingIsSent', async () => {
  const fake = transferAgent(() => assert.fail('nothing may be sent'));
  await withAgent(fake, async (client) => {
    const bad = async (item, code = 'BAD_REQUEST') =>
      assert.rejects(client.signDocument(item, { role: 'teacher' }), (e) => e instanceof KysoError && e.code === code);
    await bad({ type: 'xml', document: '<a/>', title: 'x' }); // no reference
    await bad({ type: 'pdf', document: '%PDF', title: 'x' }); // a string is not PDF bytes
    await bad({ type: 'pdf', document: new Uint8Array(4) }); // no title
    await bad({ type: 'cms', title: 'x' }); // neither document nor hash
    await bad({ type: 'docx', document: new Uint8Array(4), title: 'x' }, 'NOT_SUPPORTED');
  });
  assert.deepEqual(fake.log.map((m) => m.method), ['hello']);
});

test('signCms_overDigest_sendsHexHashAndAlgorithm', async () => {
  const digest = createHash('sha256').update('gói học bạ').digest();
  const fake = transferAgent((msg, conn) => {
    assert.deepEqual(msg.params.item, {
      type: 'cms',
      title: 'Gói học bạ',
      hash: digest.toString('hex'),
      hashAlgorithm: 'sha256',
    });
    const out = Buffer.from('cms');
    conn.send({ id: msg.id, result: { ...common, document: b64(out), size: 3, sha256: hex(out) } });
  });
  await withAgent(fake, async (client) => {
    const r = await client.signCms({ hash: new Uint8Array(digest) }, { role: 'seal', title: 'Gói học bạ' });
    assert.equal(Buffer.from(r.document).toString(), 'cms');
  });
});
