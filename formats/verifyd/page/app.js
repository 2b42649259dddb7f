// kyso-verifyd's page: drop a file, POST it to /v1/validate, tell the result in plain words.
// Everything from the report is put on the page as text (textContent), never as markup.
'use strict';

const T = {
  vi: {
    title: 'Kiểm tra chữ ký số của học bạ',
    switch: 'English',
    intro: 'Thả tệp học bạ số (PDF, XML hoặc chữ ký .p7s) vào ô dưới đây. Tệp chỉ được dùng để kiểm tra rồi xóa ngay, không được lưu lại.',
    drop: 'Kéo thả tệp vào đây, hoặc bấm để chọn tệp',
    content: 'Tệp gốc được ký (với chữ ký .p7s tách rời):',
    check: 'Kiểm tra',
    busy: 'Đang kiểm tra…',
    technical: 'Chi tiết kỹ thuật',
    print: 'In kết quả',
    pdf: 'Tải biên bản PDF có đóng dấu',
    privacy: 'Kết quả theo tiêu chuẩn ETSI TS 119 102. Tệp không được lưu lại.',
    passedTitle: '✔ Học bạ hợp lệ',
    passed: (n) => `Cả ${n} chữ ký đều đúng, của đúng người được cấp chứng thư, và tài liệu không bị sửa sau khi ký.`,
    failedTitle: '✘ Học bạ KHÔNG hợp lệ',
    failed: 'Có chữ ký không đạt. Đừng dùng tài liệu này; hãy hỏi lại nơi đã gửi nó.',
    indetTitle: '? Chưa thể xác nhận học bạ',
    indet: 'Không tìm ra lỗi trong nội dung, nhưng chưa xác nhận được người ký. Xem lý do ở từng chữ ký.',
    none: 'Tệp này không có chữ ký số nào.',
    signedBy: 'Người ký',
    person: 'cá nhân',
    organization: 'tổ chức',
    as: 'Vai trò',
    at: 'Ký lúc',
    byTimestamp: 'thời điểm được xác nhận bởi dấu thời gian',
    claimed: 'thời điểm do người ký tự khai',
    unknownTime: 'không rõ thời điểm ký',
    ok: '✔ Chữ ký đúng; chứng thư còn hiệu lực và do tổ chức được tin cậy cấp.',
    noLater: 'Tài liệu không bị thay đổi sau chữ ký này.',
    laterSigs: 'Sau chữ ký này chỉ có thêm chữ ký khác, nội dung không đổi.',
    laterChanged: 'Nội dung đã bị sửa sau chữ ký này.',
    level: 'Mức chữ ký',
    longTerm: (d) => `Tài liệu mang sẵn bằng chứng để kiểm tra lâu dài (kể cả khi chứng thư đã hết hạn), còn hiệu lực đến ${d}.`,
    reasons: {
      DOCUMENT_CHANGED: 'Nội dung tài liệu đã bị sửa sau khi ký.',
      SIGNATURE_VALUE_INVALID: 'Chữ ký không khớp với chứng thư của người ký.',
      SIGNATURE_MALFORMED: 'Chữ ký bị hỏng hoặc sai định dạng.',
      CONTENT_CHANGED_AFTER_SIGNING: 'Tài liệu đã bị sửa nội dung sau khi ký.',
      CERTIFICATE_REVOKED: 'Chứng thư số của người ký đã bị thu hồi.',
      CERTIFICATE_EXPIRED_AT_SIGNING: 'Chứng thư số của người ký đã hết hạn vào lúc ký.',
      CERTIFICATE_NOT_YET_VALID: 'Chứng thư số của người ký chưa có hiệu lực vào lúc ký.',
      CERTIFICATE_UNREADABLE: 'Không đọc được chứng thư số của người ký.',
      UNTRUSTED_CHAIN: 'Chứng thư số không do tổ chức được tin cậy cấp.',
      KEY_USAGE: 'Chứng thư số này không được phép dùng để ký.',
      CHAIN_FAILED: 'Không xác minh được chuỗi chứng thư số.',
      SIGNING_CERTIFICATE_MISMATCH: 'Chữ ký không gắn đúng với chứng thư của người ký.',
      REVOCATION_UNKNOWN: 'Chưa kiểm tra được chứng thư còn hiệu lực hay không; hãy thử lại sau.',
    },
    errors: {
      DOCUMENT_INVALID: 'Tệp này không phải học bạ số (PDF, XML hoặc chữ ký CMS) hoặc đã bị hỏng.',
      DOCUMENT_TOO_LARGE: 'Tệp quá lớn.',
      BAD_REQUEST: 'Yêu cầu không hợp lệ; hãy chọn lại tệp.',
      NOT_SUPPORTED: 'Dịch vụ này chưa có con dấu để cấp biên bản PDF.',
      BUSY: 'Dịch vụ đang bận; hãy thử lại sau ít phút.',
      TIMEOUT: 'Kiểm tra mất quá nhiều thời gian; hãy thử lại sau.',
    },
  },
  en: {
    title: 'Check a digital transcript\'s signatures',
    switch: 'Tiếng Việt',
    intro: 'Drop a digital transcript (PDF, XML or a .p7s signature) below. The file is only used for this check and deleted at once; it is never kept.',
    drop: 'Drag and drop a file here, or click to choose one',
    content: 'The signed file (for a detached .p7s signature):',
    check: 'Check',
    busy: 'Checking…',
    technical: 'Technical details',
    print: 'Print the result',
    pdf: 'Download the sealed PDF report',
    privacy: 'Results follow ETSI TS 119 102. Files are not kept.',
    passedTitle: '✔ The transcript is valid',
    passed: (n) => `All ${n} signatures are correct, made by the certificates' holders, and the document was not changed after signing.`,
    failedTitle: '✘ The transcript is NOT valid',
    failed: 'A signature failed. Do not rely on this document; ask whoever sent it.',
    indetTitle: '? The transcript cannot be confirmed yet',
    indet: 'Nothing wrong was found in the content, but a signer could not be confirmed. See each signature.',
    none: 'This file has no digital signature.',
    signedBy: 'Signed by',
    person: 'person',
    organization: 'organization',
    as: 'Role',
    at: 'Signed at',
    byTimestamp: 'time proved by a timestamp',
    claimed: 'time claimed by the signer',
    unknownTime: 'signing time unknown',
    ok: '✔ Signature correct; the certificate was valid and issued by a trusted authority.',
    noLater: 'The document was not changed after this signature.',
    laterSigs: 'After this signature only other signatures were added; the content is unchanged.',
    laterChanged: 'The content was changed after this signature.',
    level: 'Signature level',
    longTerm: (d) => `The document carries its own proof for checking in the long term (even after the certificates expire), valid until ${d}.`,
    reasons: {
      DOCUMENT_CHANGED: 'The document was changed after it was signed.',
      SIGNATURE_VALUE_INVALID: 'The signature does not match the signer\'s certificate.',
      SIGNATURE_MALFORMED: 'The signature is damaged or malformed.',
      CONTENT_CHANGED_AFTER_SIGNING: 'The document\'s content was changed after signing.',
      CERTIFICATE_REVOKED: 'The signer\'s certificate was revoked.',
      CERTIFICATE_EXPIRED_AT_SIGNING: 'The signer\'s certificate had expired when it signed.',
      CERTIFICATE_NOT_YET_VALID: 'The signer\'s certificate was not yet valid when it signed.',
      CERTIFICATE_UNREADABLE: 'The signer\'s certificate cannot be read.',
      UNTRUSTED_CHAIN: 'The certificate was not issued by a trusted authority.',
      KEY_USAGE: 'This certificate may not be used for signing.',
      CHAIN_FAILED: 'The certificate chain could not be verified.',
      SIGNING_CERTIFICATE_MISMATCH: 'The signature is not bound to the signer\'s certificate.',
      REVOCATION_UNKNOWN: 'Whether the certificate is still valid could not be checked; try again later.',
    },
    errors: {
      DOCUMENT_INVALID: 'This file is not a digital transcript (PDF, XML or a CMS signature), or it is damaged.',
      DOCUMENT_TOO_LARGE: 'The file is too large.',
      BAD_REQUEST: 'The request is not valid; choose the file again.',
      NOT_SUPPORTED: 'This service has no seal to issue PDF reports.',
      BUSY: 'The service is busy; try again in a few minutes.',
      TIMEOUT: 'The check took too long; try again later.',
    },
  },
};

let lang = new URLSearchParams(location.search).get('lang') === 'en' ? 'en' : 'vi';
let lastReport = null;
let lastBody = null;
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = T[lang][e.dataset.t];
  document.title = T[lang].title;
  if (lastReport) render(lastReport);
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const f = new Intl.DateTimeFormat(lang === 'vi' ? 'vi-VN' : 'en-GB', {
    timeZone: 'Asia/Ho_Chi_Minh', hour: '2-digit', minute: '2-digit', second: '2-digit',
    day: '2-digit', month: '2-digit', year: 'numeric',
  });
  return `${f.format(d)} (GMT+7)`;
}

function cls(indication) {
  return indication === 'TOTAL-PASSED' ? 'passed' : indication === 'TOTAL-FAILED' ? 'failed' : 'indeterminate';
}

function render(rep) {
  const t = T[lang];
  const v = $('verdict');
  v.replaceChildren();
  v.className = cls(rep.indication);
  const n = rep.signatures.length;
  if (rep.indication === 'TOTAL-PASSED') {
    v.append(el('h2', t.passedTitle), el('p', t.passed(n)));
  } else if (rep.indication === 'TOTAL-FAILED') {
    v.append(el('h2', t.failedTitle), el('p', t.failed));
  } else {
    v.append(el('h2', t.indetTitle), el('p', n === 0 ? t.none : t.indet));
  }
  const list = $('signatures');
  list.replaceChildren();
  rep.signatures.forEach((s, i) => {
    const li = el('li', undefined, cls(s.indication));
    const who = s.signer ? s.signer.name : '?';
    const role = s.role ? ` — ${s.role[lang]}` : '';
    li.append(el('h3', `${i + 1}. ${who}${role}`));
    if (s.signer) {
      const ids = s.signer.identifiers.map((x) => `${x.type} ${x.value}`).join(', ');
      const kind = s.signer.kind === 'organization' ? t.organization : t.person;
      li.append(el('p', `${t.signedBy}: ${s.signer.name} (${kind}${ids ? ', ' + ids : ''})`));
      if (s.signer.organization && s.signer.organization !== s.signer.name) li.append(el('p', s.signer.organization));
    }
    const st = s.signingTime;
    const proof = st.proof === 'timestamp' ? t.byTimestamp : st.proof === 'claimed' ? t.claimed : t.unknownTime;
    li.append(el('p', st.time ? `${t.at}: ${when(st.time)} — ${proof}` : proof));
    if (s.indication === 'TOTAL-PASSED') {
      li.append(el('p', t.ok, 'ok'));
    } else {
      li.append(el('p', `✘ ${t.reasons[s.reason] || s.reason}`, 'problem'));
    }
    if (s.laterChanges) {
      const k = s.laterChanges.kind;
      li.append(el('p', k === 'none' ? t.noLater : k === 'content-changed' ? t.laterChanged : t.laterSigs));
    }
    const lt = s.longTerm;
    if (lt && lt.offline && !lt.problem && lt.coveredUntil) li.append(el('p', t.longTerm(when(lt.coveredUntil))));
    // LATER_SIGNATURES is what the laterChanges line above already says.
    for (const w of s.warnings) {
      if (w.code !== 'LATER_SIGNATURES') li.append(el('p', `• ${w[lang]}`, 'note'));
    }
    const tech = el('details');
    tech.append(el('summary', t.technical),
      el('pre', `${t.level}: ${s.level} (${s.format}, ${s.algorithm.padding})\n` +
        `ETSI: ${s.indication}${s.subIndication ? ' / ' + s.subIndication : ''}\n` +
        `${s.signer ? s.signer.subject : ''}`));
    li.append(tech);
    list.append(li);
  });
  $('raw').textContent = JSON.stringify(rep, null, 2);
  $('service').textContent = rep.service.name;
  $('result').hidden = false;
}

async function send(body, query = '') {
  const r = await fetch(`/v1/validate${query}`, { method: 'POST', body });
  if (!r.ok) {
    let code = '';
    try { code = (await r.json()).error.code; } catch (_) { /* not JSON */ }
    throw new Error(T[lang].errors[code] || `HTTP ${r.status}`);
  }
  return r;
}

async function validate(body) {
  $('error').hidden = true;
  $('result').hidden = true;
  $('busy').hidden = false;
  try {
    const rep = await (await send(body)).json();
    lastReport = rep;
    lastBody = body;
    render(rep);
  } catch (e) {
    $('error').textContent = e.message;
    $('error').hidden = false;
  } finally {
    $('busy').hidden = true;
  }
}

function take(file) {
  if (!file) return;
  if (/\.(p7s|p7m|der|pem)$/i.test(file.name)) {
    $('detached').hidden = false;
    $('check-detached').onclick = () => {
      const form = new FormData();
      form.append('signature', file);
      if ($('content').files[0]) form.append('content', $('content').files[0]);
      validate(form);
    };
    return;
  }
  $('detached').hidden = true;
  validate(file);
}

document.addEventListener('DOMContentLoaded', () => {
  const drop = $('drop');
  drop.addEventListener('click', () => $('file').click());
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') $('file').click(); });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    take(e.dataTransfer.files[0]);
  });
  $('file').addEventListener('click', (e) => e.stopPropagation());
  $('file').addEventListener('change', () => take($('file').files[0]));
  $('lang').addEventListener('click', () => { lang = lang === 'vi' ? 'en' : 'vi'; applyLanguage(); });
  $('print').addEventListener('click', () => window.print());
  $('pdf').addEventListener('click', async () => {
    if (!lastBody) return;
    try {
      const r = await send(lastBody, `?report=pdf&lang=${lang}`);
      const url = URL.createObjectURL(await r.blob());
      const a = el('a');
      a.href = url;
      a.download = 'bien-ban-kiem-tra.pdf';
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      $('error').textContent = e.message;
      $('error').hidden = false;
    }
  });
  applyLanguage();
});
