// The page's part of server-side signing (docs/server-signing.md): it never sees a transcript,
// only digests. In your app: `import { connect, isKysoError } from 'kyso-agent-client';`
import { connect, isKysoError } from '/sdk/index.js';

const $ = (id) => document.getElementById(id);
const ROLE = 'principal';

async function postJson(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(json.error ?? `HTTP ${res.status}`);
  return json;
}

async function showDocuments(files) {
  const list = $('documents');
  list.replaceChildren();
  const rows = files ?? (await (await fetch('/api/documents')).json()).documents.map((d) => ({ file: d.name, ok: d.signed }));
  for (const f of rows) {
    const li = document.createElement('li');
    li.className = f.ok ? 'ok' : f.error ? 'err' : '';
    if (f.download) {
      const a = document.createElement('a');
      a.href = f.download;
      a.textContent = f.file;
      li.append(a);
    } else {
      li.append(f.file);
    }
    if (f.error) li.append(` [${f.error.code}] ${f.error.message}`);
    list.append(li);
  }
}

async function signAll() {
  $('error').textContent = '';
  $('sign').disabled = true;
  try {
    // 1. The agent on this computer, paired with this site once.
    const kyso = await connect();
    if (!kyso.info.paired) {
      $('pair-code').hidden = false;
      await kyso.pair({ onCode: ({ code }) => ($('code').textContent = code) });
      $('pair-code').hidden = true;
    }
    const [cred] = await kyso.listCredentials({ role: ROLE, validNow: true });
    if (!cred) throw new Error('Không có chứng thư số Hiệu trưởng / no principal certificate');

    // 2. The server prepares its PDFs for this certificate chain and sends back the digests.
    $('status').textContent = 'Máy chủ đang chuẩn bị / the server prepares…';
    const prepared = await postJson('/api/prepare', { certificate: cred.certificateDer, chain: cred.chain });

    // 3. One batch: one Kyso dialog, one PIN for every digest, progress per item.
    const bar = $('bar');
    bar.hidden = false;
    bar.max = prepared.items.length;
    bar.value = 0;
    $('status').textContent = 'Xác nhận và nhập PIN trong cửa sổ Kyso / approve and type the PIN in Kyso';
    const summary = await kyso.signBatch(prepared.items, {
      role: ROLE,
      credentialId: cred.id,
      algorithm: prepared.algorithm, // the one the server prepared for
      onProgress: ({ done }) => (bar.value = done),
    });

    // 4. The signatures go back; the server embeds them and keeps the signed PDFs.
    $('status').textContent = 'Máy chủ đang gắn chữ ký / the server embeds…';
    const embedded = await postJson('/api/embed', {
      batchId: prepared.batchId,
      certificate: summary.certificate,
      results: summary.results.map((r) => ({ index: r.index, ok: r.ok, signature: r.ok ? r.signature : undefined })),
    });
    $('status').textContent = `Đã ký ${embedded.embedded}, lỗi ${embedded.failed} / signed ${embedded.embedded}, failed ${embedded.failed}`;
    await showDocuments([...embedded.files, ...prepared.failed.map((f) => ({ ...f, ok: false }))]);
    kyso.close();
  } catch (e) {
    if (isKysoError(e, 'USER_CANCELLED')) {
      $('status').textContent = 'Đã hủy / cancelled';
    } else {
      $('error').textContent = isKysoError(e) ? `${e.messageVi} (${e.code})` : String(e.message ?? e);
    }
  } finally {
    $('sign').disabled = false;
  }
}

$('sign').addEventListener('click', signAll);
showDocuments().catch((e) => ($('error').textContent = String(e)));
