// The demo transcript screen: hashes each student's transcript with WebCrypto and signs the
// hashes through the local Kyso agent with the SDK, as GVCN, Hiệu trưởng and the school's seal.
// Query options: ?ports=19587,19588 (agent ports to try), ?secure=1 (wss), ?lang=en (agent dialogs).
import { connect, KysoError } from './sdk/index.js';
import { school, students, transcriptOf } from './class-data.js';
import { verifySignature } from './verify.js';
import { transcriptPdf, transcriptXml, xmlPlacement } from './documents.js';

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);

const ROLES = {
  teacher: { label: 'GVCN', status: 'GVCN đã ký', css: 'st-teacher', verb: 'GVCN đang ký', done: 'GVCN đã ký', failed: 'Lỗi ký GVCN' },
  principal: { label: 'Hiệu trưởng', status: 'Hiệu trưởng đã ký', css: 'st-principal', verb: 'Hiệu trưởng đang ký', done: 'Hiệu trưởng đã ký', failed: 'Lỗi ký HT' },
  seal: { label: 'Dấu', status: 'Đã đóng dấu', css: 'st-seal', verb: 'Đang đóng dấu', done: 'Đã đóng dấu', failed: 'Lỗi đóng dấu' },
};
const ORDER = ['teacher', 'principal', 'seal'];

const state = {
  client: null,
  info: null,
  /** connect()'s error when the agent could not be reached: {code, messageVi, messageEn, detail, data}. */
  connectError: undefined,
  /** The browser was about to ask the user about Local Network Access when the page connected. */
  localNetworkPrompted: false,
  busy: false,
  batchId: null,
  /** lookupCode -> {hex, bytes (the digest), data (the transcript JSON, UTF-8)} */
  hashes: new Map(),
  /**
   * lookupCode -> {teacher?, principal?, seal?}: {signature, algorithm, credentialId, certificate,
   * chain, hash, signer, at, valid}; valid: the page's own WebCrypto check over the transcript
   * (true / false / null = algorithm not checkable here / undefined = not checked yet).
   */
  signatures: {},
  /** lookupCode -> {role, code, messageVi} of the last failed attempt */
  errors: {},
  credentials: { teacher: [], principal: [], seal: [] },
  credentialById: new Map(),
  /** every batch.progress the page received, in order: {role, batchId, done, total, index, ok, code?} */
  progressEvents: [],
  summaries: [],
  /**
   * format ("xml" | "pdf") -> lookupCode -> {bytes (the file as signed so far), roles: [...],
   * ids: [Signature Id (xml) or field name (pdf), ...]}
   */
  files: { xml: new Map(), pdf: new Map() },
};
const FORMATS = { xml: 'XML', pdf: 'PDF' };
/** Each role's signature box on the PDF's page, side by side along the bottom (points). */
const PDF_BOX = { teacher: { x: 36 }, principal: { x: 212 }, seal: { x: 388 } };
const PDF_REASON = { teacher: 'Giáo viên chủ nhiệm ký học bạ', principal: 'Hiệu trưởng phê duyệt học bạ', seal: 'Đóng dấu phát hành học bạ' };

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const formatDate = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString('vi-VN');
};
const vnDate = (ymd) => ymd.split('-').reverse().join('/');
const titleOf = (s) => `Học bạ ${school.className} - ${s.fullName}`;

// ---------------------------------------------------------------- notices

function notice(kind, html) {
  const el = $('notice');
  el.className = `notice notice-${kind}`;
  el.innerHTML = html;
  el.hidden = false;
}

function clearNotice() {
  $('notice').hidden = true;
}

/** Shows an SDK error in Vietnamese, with its code for support and the detail on hover. */
function showError(e, prefix = '') {
  console.warn('Kyso:', e);
  if (e instanceof KysoError) {
    notice(
      'err',
      `${prefix ? `<strong>${escapeHtml(prefix)}</strong> ` : ''}${escapeHtml(e.messageVi)}` +
        `<span class="code" title="${escapeHtml(e.detail ?? e.messageEn)}">[${escapeHtml(e.code)}]</span>`,
    );
  } else {
    notice('err', `${escapeHtml(prefix)} Lỗi không mong đợi: ${escapeHtml(String(e?.message ?? e))}`);
  }
}

// ---------------------------------------------------------------- rendering

function validMark(valid) {
  if (valid === true) return ' <span class="v-ok" title="Chữ ký hợp lệ: trang đã kiểm tra chữ ký trên bản ghi học bạ bằng WebCrypto">✓</span>';
  if (valid === false) return ' <span class="v-bad" title="Chữ ký KHÔNG hợp lệ với bản ghi học bạ này">✗ không hợp lệ</span>';
  if (valid === null) return ' <span class="v-unk" title="Trang không tự kiểm tra được thuật toán này">?</span>';
  return '';
}

function statusOf(sigs) {
  for (const role of [...ORDER].reverse()) if (sigs?.[role]) return ROLES[role];
  return { status: 'Chưa ký', css: 'st-none' };
}

function renderRows() {
  const rows = students.map((s) => {
    const sigs = state.signatures[s.lookupCode] ?? {};
    const st = statusOf(sigs);
    const err = state.errors[s.lookupCode];
    const hash = state.hashes.get(s.lookupCode)?.hex ?? '';
    const signers = ORDER.filter((r) => sigs[r])
      .map(
        (r) =>
          `<div title="${escapeHtml(`${sigs[r].algorithm} · ${formatDate(sigs[r].at)} ${new Date(sigs[r].at).toLocaleTimeString('vi-VN')}`)}">` +
          `<span class="role">${ROLES[r].label}:</span> <span class="who">${escapeHtml(sigs[r].signer)}</span>${validMark(sigs[r].valid)}</div>`,
      )
      .join('');
    const canTeacher = !sigs.teacher && state.client && state.info?.paired && !state.busy;
    return (
      `<tr data-key="${s.lookupCode}">` +
      `<td class="c-no">${s.no}</td>` +
      `<td class="name">${escapeHtml(s.fullName)}</td>` +
      `<td>${vnDate(s.birthDate)}</td>` +
      `<td>${s.gender}</td>` +
      `<td class="mono" title="${s.lookupCode}">${s.lookupCode.slice(0, 8)}…</td>` +
      `<td>${s.average.toFixed(1)} · ${s.result}</td>` +
      `<td class="mono" title="${hash}">${hash.slice(0, 12)}…</td>` +
      `<td><span class="badge ${st.css}">${st.status}</span>` +
      (err ? `<span class="badge st-error" title="${escapeHtml(`${err.messageVi} [${err.code}]`)}">${ROLES[err.role].failed}</span>` : '') +
      `</td>` +
      `<td class="signers">${signers || '<span class="role">—</span>'}</td>` +
      `<td>${fileLinks(s)}</td>` +
      `<td class="c-act">${sigs.teacher ? '' : `<button class="btn btn-small" data-sign-one="${s.lookupCode}" ${canTeacher ? '' : 'disabled'}>Ký GVCN</button>`}</td>` +
      `</tr>`
    );
  });
  $('rows').innerHTML = rows.join('');
}

const blobUrls = new Map();
/** Download links of a student's signed files, with how many signatures each carries. */
function fileLinks(student) {
  const links = [];
  for (const [format, label] of Object.entries(FORMATS)) {
    const f = state.files[format].get(student.lookupCode);
    if (!f || f.roles.length === 0) continue;
    const key = `${format}:${student.lookupCode}:${f.roles.length}`;
    if (!blobUrls.has(key)) {
      blobUrls.set(key, URL.createObjectURL(new Blob([f.bytes], { type: format === 'xml' ? 'application/xml' : 'application/pdf' })));
    }
    const name = `hoc-ba-${school.className}-${String(student.no).padStart(2, '0')}.${format}`;
    links.push(`<a class="file-link" href="${blobUrls.get(key)}" download="${name}" title="${f.roles.map((r) => ROLES[r].label).join(' → ')}">${label} ✓${f.roles.length}</a>`);
  }
  return links.join('') || '<span class="role">—</span>';
}

/** Students whose file of this format waits for a role (signed by the previous role). */
function eligibleFiles(format, role) {
  const prev = ORDER[ORDER.indexOf(role) - 1];
  return students.filter((s) => {
    const roles = state.files[format].get(s.lookupCode).roles;
    return !roles.includes(role) && (!prev || roles.includes(prev));
  });
}

/** Students waiting for a role: not signed in it yet, and signed by the previous role. */
function eligible(role) {
  const prev = ORDER[ORDER.indexOf(role) - 1];
  return students.filter((s) => {
    const sigs = state.signatures[s.lookupCode] ?? {};
    return !sigs[role] && (!prev || sigs[prev]);
  });
}

function renderControls() {
  const ready = Boolean(state.client?.connected);
  const paired = ready && Boolean(state.info?.paired);
  $('btn-pair').disabled = !ready || paired || state.busy;
  $('btn-pair').textContent = paired ? 'Đã ghép nối' : 'Ghép nối';
  $('btn-reconnect').hidden = ready;
  $('btn-remote-signin').disabled = !paired || state.busy;
  for (const role of ORDER) {
    const btn = $(`btn-${role}`);
    btn.disabled = !paired || state.busy || eligible(role).length === 0 || state.credentials[role].length === 0;
  }
  for (const format of Object.keys(FORMATS)) {
    for (const role of ORDER) {
      $(`btn-${format}-${role}`).disabled =
        !paired || state.busy || eligibleFiles(format, role).length === 0 || state.credentials[role].length === 0;
    }
    const m = (role) => students.filter((s) => state.files[format].get(s.lookupCode).roles.includes(role)).length;
    $(`${format}-stats`).textContent = `GVCN ${m('teacher')}/${students.length} · Hiệu trưởng ${m('principal')}/${students.length} · Dấu ${m('seal')}/${students.length}`;
  }
  const n = (role) => students.filter((s) => state.signatures[s.lookupCode]?.[role]).length;
  $('stats').textContent = `GVCN đã ký ${n('teacher')}/${students.length} · Hiệu trưởng ${n('principal')}/${students.length} · Đóng dấu ${n('seal')}/${students.length}`;
  renderRows();
}

function renderAgent() {
  const pill = $('agent-pill');
  if (state.client?.connected && state.info) {
    pill.className = 'pill pill-ok';
    pill.textContent = `Kyso ${state.info.version}: đã kết nối`;
    $('agent-status').innerHTML = `Kyso ${escapeHtml(state.info.version)} <small>· ${escapeHtml(state.client.url)} · giao thức v${state.info.protocol}</small>`;
    $('origin-status').innerHTML = state.info.paired
      ? `${escapeHtml(state.info.origin)} <small>· ${state.info.allowListed ? 'được CNTT cho phép' : 'đã ghép nối'}</small>`
      : `${escapeHtml(state.info.origin)} <small>· chưa ghép nối: bấm “Ghép nối”</small>`;
  } else {
    pill.className = 'pill pill-err';
    pill.textContent = 'Kyso: chưa kết nối';
    $('agent-status').textContent = 'Chưa kết nối được Kyso';
    $('origin-status').textContent = location.origin;
  }
  $('credentials').hidden = !(state.info?.paired && state.client?.connected);
  renderControls();
}

function renderCredentials() {
  for (const role of ORDER) {
    const sel = $(`cred-${role}`);
    const list = state.credentials[role];
    sel.innerHTML = list.length
      ? list
          .map((c) => {
            const cert = c.certificate;
            const who = cert.commonName + (cert.title ? ` (${cert.title})` : '');
            const issuer = (cert.issuer.match(/CN=([^,]+)/) ?? [])[1] ?? cert.issuer;
            const where = c.source?.kind === 'remote' ? ` — ký từ xa: ${escapeHtml(c.source.name ?? '')}` : '';
            return `<option value="${c.id}">${escapeHtml(who)} — ${escapeHtml(issuer)} — đến ${formatDate(cert.notAfter)}${where}</option>`;
          })
          .join('')
      : '<option value="">Không có chứng thư phù hợp — hãy cắm đúng token</option>';
  }
  // Remote signing services IT configured in Kyso: signed in or not (the password is asked by
  // Kyso's own dialog, never by this page).
  const services = state.client?.remoteServices ?? [];
  $('remote').hidden = services.length === 0;
  $('remote-status').textContent = services
    .map((s) => `Ký số từ xa: ${s.name} (${s.username}) — ${s.signedIn ? 'đã đăng nhập' : 'chưa đăng nhập'}`)
    .join('; ');
  $('btn-remote-signin').hidden = services.every((s) => s.signedIn);
  renderControls();
}

function remoteSignInClick() {
  return withBusy(async () => {
    clearNotice();
    try {
      await state.client.listCredentials({ signIn: true });
      await loadCredentials();
      notice('ok', 'Đã đăng nhập dịch vụ ký số từ xa.');
    } catch (e) {
      showError(e, 'Chưa đăng nhập được dịch vụ ký số từ xa:');
    }
  });
}

// ---------------------------------------------------------------- progress

function progressStart(role, total) {
  $('progress').hidden = false;
  $('progress-label').textContent = `${ROLES[role].verb}: chờ xác nhận trong hộp thoại Kyso… (${total} học bạ)`;
  $('progress-fill').style.width = '0%';
  $('progress-bar').setAttribute('aria-valuemax', String(total));
  $('progress-bar').setAttribute('aria-valuenow', '0');
  $('btn-cancel').disabled = false;
}

function progressUpdate(role, p) {
  $('progress-label').textContent = `${ROLES[role].verb}: ${p.done}/${p.total} học bạ`;
  $('progress-fill').style.width = `${Math.round((100 * p.done) / p.total)}%`;
  $('progress-bar').setAttribute('aria-valuenow', String(p.done));
}

function progressEnd() {
  $('btn-cancel').disabled = true;
  setTimeout(() => {
    if (!state.busy) $('progress').hidden = true;
  }, 1500);
}

// ---------------------------------------------------------------- agent

function signerOf(credentialId) {
  const c = state.credentialById.get(credentialId);
  if (!c) return `Chứng thư ${credentialId.slice(0, 8)}…`;
  return c.certificate.kind === 'organization' ? c.certificate.organization || c.certificate.commonName : c.certificate.commonName;
}

function record(student, role, sig) {
  const entry = (state.signatures[student.lookupCode] ??= {});
  entry[role] = { ...sig, signer: signerOf(sig.credentialId), at: new Date().toISOString(), valid: undefined };
  if (state.errors[student.lookupCode]?.role === role) delete state.errors[student.lookupCode];
}

/** Checks every signature not checked yet against its transcript, then redraws once. */
async function verifyPending() {
  const jobs = [];
  for (const s of students) {
    for (const sig of Object.values(state.signatures[s.lookupCode] ?? {})) {
      if (sig.valid !== undefined) continue;
      const data = state.hashes.get(s.lookupCode).data;
      jobs.push(verifySignature(sig, data).then((v) => (sig.valid = v), () => (sig.valid = false)));
    }
  }
  await Promise.all(jobs);
  renderRows();
}

async function loadCredentials() {
  const all = await Promise.all(ORDER.map((role) => state.client.listCredentials({ role, validNow: true })));
  ORDER.forEach((role, i) => {
    // The role's likely holder first (a "Hiệu trưởng" certificate for principal), as the agent does.
    const score = (c) => (c.suggestedRole === role ? 2 : 0) + (c.certificate.validNow ? 1 : 0);
    state.credentials[role] = [...all[i]].sort((a, b) => score(b) - score(a));
    for (const c of all[i]) state.credentialById.set(c.id, c);
  });
  renderCredentials();
}

async function connectAgent() {
  $('agent-status').textContent = 'Đang tìm Kyso trên máy này…';
  const ports = query.get('ports')?.split(',').map(Number).filter((p) => p > 0);
  state.connectError = null;
  try {
    const client = await connect({
      ...(ports?.length ? { ports } : {}),
      secure: query.get('secure') === '1',
      language: query.get('lang') === 'en' ? 'en' : 'vi',
      // The browser is about to ask whether this site may reach apps on this computer.
      onLocalNetworkPrompt: () => {
        state.localNetworkPrompted = true;
        notice('info', 'Trình duyệt sẽ hỏi trang này có được kết nối tới các ứng dụng trên máy không: hãy bấm “Cho phép” để dùng Kyso.');
      },
    });
    state.client = client;
    state.info = client.info;
    client.on('close', () => {
      state.client = null;
      renderAgent();
      if (!state.busy) notice('err', 'Mất kết nối với Kyso. Hãy kiểm tra Kyso còn chạy rồi bấm “Kết nối lại”.');
    });
    client.on('token.removed', (e) => {
      notice('info', `Token “${escapeHtml(e.token.label ?? '')}” đã được rút ra.`);
      loadCredentials().catch((err) => showError(err));
    });
    client.on('token.inserted', (e) => {
      notice('info', `Đã cắm token “${escapeHtml(e.token.label ?? '')}”.`);
      loadCredentials().catch((err) => showError(err));
    });
    renderAgent();
    if (state.info.paired) await loadCredentials();
  } catch (e) {
    state.client = null;
    // What connect() reported (AGENT_NOT_FOUND, LOCAL_NETWORK_*, ...), for tests and support.
    state.connectError = { code: e.code, messageVi: e.messageVi, messageEn: e.messageEn, detail: e.detail, data: e.data };
    renderAgent();
    showError(e);
  }
}

async function withBusy(fn) {
  if (state.busy) return;
  state.busy = true;
  renderControls();
  try {
    await fn();
    await verifyPending();
  } finally {
    state.busy = false;
    renderControls();
  }
}

function pairClick() {
  return withBusy(async () => {
    clearNotice();
    try {
      const result = await state.client.pair({
        onCode: ({ code }) => {
          $('pair-code').textContent = code;
          $('pair-box').hidden = false;
        },
      });
      state.info = await state.client.hello();
      notice('ok', `Đã ghép nối ${escapeHtml(result.origin)} với Kyso.`);
      await loadCredentials();
    } catch (e) {
      showError(e, 'Ghép nối không thành công:');
    } finally {
      $('pair-box').hidden = true;
      renderAgent();
    }
  });
}

function itemOf(student) {
  return { hash: state.hashes.get(student.lookupCode).bytes, hashAlgorithm: 'sha256', title: titleOf(student), key: student.lookupCode };
}

function signOne(lookupCode) {
  const student = students.find((s) => s.lookupCode === lookupCode);
  return withBusy(async () => {
    clearNotice();
    try {
      const credentialId = $('cred-teacher').value || undefined;
      const sig = await state.client.sign(itemOf(student), { role: 'teacher', ...(credentialId ? { credentialId } : {}) });
      record(student, 'teacher', sig);
      notice('ok', `GVCN đã ký học bạ của ${escapeHtml(student.fullName)}.`);
    } catch (e) {
      state.errors[student.lookupCode] = { role: 'teacher', code: e.code, messageVi: e.messageVi ?? String(e) };
      showError(e, `Chưa ký được học bạ của ${student.fullName}:`);
    }
  });
}

function signBatch(role) {
  return withBusy(async () => {
    clearNotice();
    const list = eligible(role);
    if (list.length === 0) return;
    const waiting = role === 'teacher' ? 0 : students.length - list.length - students.filter((s) => state.signatures[s.lookupCode]?.[role]).length;
    progressStart(role, list.length);
    const credentialId = $(`cred-${role}`).value || undefined;
    try {
      const batch = state.client.signBatch(list.map(itemOf), {
        role,
        ...(credentialId ? { credentialId } : {}),
        onProgress: (p) => {
          state.progressEvents.push({ role, batchId: p.batchId, done: p.done, total: p.total, index: p.index, ok: p.ok, ...(p.error ? { code: p.error.code } : {}) });
          progressUpdate(role, p);
        },
      });
      state.batchId = batch.batchId;
      const summary = await batch;
      state.summaries.push({ role, batchId: summary.batchId, total: summary.total, signed: summary.signed, failed: summary.failed, cancelled: summary.cancelled });
      const byKey = new Map(list.map((s) => [s.lookupCode, s]));
      for (const r of summary.succeeded) {
        record(byKey.get(r.item.key), role, {
          signature: r.signature,
          algorithm: summary.algorithm,
          credentialId: summary.credentialId,
          certificate: summary.certificate,
          chain: summary.chain,
          hash: state.hashes.get(r.item.key).hex,
        });
      }
      for (const f of summary.failures) {
        state.errors[f.item.key] = { role, code: f.error.code, messageVi: f.error.messageVi };
      }
      const done = ROLES[role].done;
      if (summary.failed === 0) {
        notice('ok', `${done} ${summary.signed}/${summary.total} học bạ.` + (waiting > 0 ? ` Còn ${waiting} học bạ chưa đủ chữ ký trước nên chưa được trình ký.` : ''));
      } else {
        const first = summary.failures[0].error;
        const names = summary.failures.slice(0, 5).map((f) => students.find((s) => s.lookupCode === f.item.key).fullName);
        notice(
          'err',
          `${done} ${summary.signed}/${summary.total} học bạ${summary.cancelled ? ' (đã dừng)' : ''}; ${summary.failed} học bạ chưa ký: ` +
            `${escapeHtml(names.join(', '))}${summary.failed > 5 ? '…' : ''}. ${escapeHtml(first.messageVi)}<span class="code">[${escapeHtml(first.code)}]</span>`,
        );
      }
    } catch (e) {
      showError(e, `${ROLES[role].label} chưa ký được:`);
    } finally {
      state.batchId = null;
      progressEnd();
    }
  });
}

/** Signs the class's XML or PDF files in one role: one approval, one PIN, the files sent whole. */
function signFiles(format, role) {
  return withBusy(async () => {
    clearNotice();
    const list = eligibleFiles(format, role);
    if (list.length === 0) return;
    progressStart(role, list.length);
    $('progress-label').textContent += ` · ${FORMATS[format]}`;
    const credentialId = $(`cred-${role}`).value || undefined;
    const items = list.map((s) => {
      const f = state.files[format].get(s.lookupCode);
      const common = { title: `${titleOf(s)} (${FORMATS[format]})`, key: s.lookupCode, document: f.bytes };
      return format === 'xml'
        ? { type: 'xml', ...common, ...xmlPlacement(s, role) }
        : {
            type: 'pdf',
            ...common,
            reason: PDF_REASON[role],
            location: school.province,
            visible: { page: 1, x: PDF_BOX[role].x, y: 40, width: 172, height: 62 },
          };
    });
    try {
      const started = performance.now();
      const batch = state.client.signDocuments(items, {
        role,
        ...(credentialId ? { credentialId } : {}),
        onProgress: (p) => {
          state.progressEvents.push({ role, format, batchId: p.batchId, done: p.done, total: p.total, index: p.index, ok: p.ok, ...(p.error ? { code: p.error.code } : {}) });
          progressUpdate(role, p);
        },
      });
      state.batchId = batch.batchId;
      const summary = await batch;
      state.summaries.push({ role, format, batchId: summary.batchId, total: summary.total, signed: summary.signed, failed: summary.failed, cancelled: summary.cancelled, ms: Math.round(performance.now() - started) });
      for (const r of summary.succeeded) {
        const f = state.files[format].get(r.item.key);
        state.files[format].set(r.item.key, { bytes: r.document, roles: [...f.roles, role], ids: [...f.ids, r.signatureId ?? r.fieldName] });
      }
      for (const f of summary.failures) state.errors[f.item.key] = { role, code: f.error.code, messageVi: f.error.messageVi };
      if (summary.failed === 0) {
        notice('ok', `${ROLES[role].done} ${summary.signed}/${summary.total} tệp ${FORMATS[format]}. Tải tệp đã ký ở cột “Tệp đã ký”.`);
      } else {
        const first = summary.failures[0].error;
        notice('err', `${ROLES[role].done} ${summary.signed}/${summary.total} tệp ${FORMATS[format]}; ${summary.failed} tệp chưa ký. ${escapeHtml(first.messageVi)}<span class="code">[${escapeHtml(first.code)}]</span>`);
      }
    } catch (e) {
      showError(e, `${ROLES[role].label} chưa ký được tệp ${FORMATS[format]}:`);
    } finally {
      state.batchId = null;
      progressEnd();
    }
  });
}

async function cancelClick() {
  if (state.batchId === null || !state.client) return;
  $('btn-cancel').disabled = true;
  $('progress-label').textContent = 'Đang dừng sau học bạ đang ký…';
  try {
    await state.client.cancel(state.batchId);
  } catch (e) {
    showError(e, 'Không dừng được:');
  }
}

// ---------------------------------------------------------------- start

async function hashAll() {
  const enc = new TextEncoder();
  for (const s of students) {
    const data = enc.encode(JSON.stringify(transcriptOf(s)));
    const bytes = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    state.hashes.set(s.lookupCode, { bytes, hex, data });
  }
}

async function main() {
  $('count').textContent = String(students.length);
  $('meta-teacher').textContent = school.homeroomTeacher;
  $('meta-principal').textContent = school.principal;
  $('btn-pair').addEventListener('click', pairClick);
  $('btn-reconnect').addEventListener('click', () => connectAgent());
  $('btn-teacher').addEventListener('click', () => signBatch('teacher'));
  $('btn-principal').addEventListener('click', () => signBatch('principal'));
  $('btn-remote-signin').addEventListener('click', remoteSignInClick);
  $('btn-seal').addEventListener('click', () => signBatch('seal'));
  $('btn-cancel').addEventListener('click', cancelClick);
  for (const format of Object.keys(FORMATS)) {
    for (const role of ORDER) $(`btn-${format}-${role}`).addEventListener('click', () => signFiles(format, role));
  }
  const enc = new TextEncoder();
  for (const s of students) {
    state.files.xml.set(s.lookupCode, { bytes: enc.encode(transcriptXml(s)), roles: [], ids: [] });
    state.files.pdf.set(s.lookupCode, { bytes: transcriptPdf(s), roles: [], ids: [] });
  }
  $('rows').addEventListener('click', (e) => {
    const key = e.target.closest('[data-sign-one]')?.dataset.signOne;
    if (key) signOne(key);
  });
  for (const role of ORDER) $(`cred-${role}`).addEventListener('change', renderControls);
  await hashAll();
  renderRows();
  await connectAgent();
}

// For the end-to-end test and the curious: the page's state, and when it finished starting.
window.kysoDemo = { state, students, transcriptOf, ready: main() };
