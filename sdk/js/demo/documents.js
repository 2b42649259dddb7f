// Each student's transcript as the files schools exchange: an XML document (HocBa with its data
// element, signed in place by GVCN, Hiệu trưởng and the school's seal) and a one-page PDF
// (signed by incremental updates). Deterministic, built in the page from class-data.js.
import { school, subjects } from './class-data.js';

const xmlEscape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]);

/** The XML element ids of a student's transcript. */
export const xmlIds = (student) => {
  const id = `hb-${String(student.no).padStart(2, '0')}`;
  return { transcript: id, data: `${id}-dl` };
};

/**
 * Where each role's signature goes (docs/protocol.md, Document items):
 *  GVCN signs the data element, enveloped in ChuKyGVCN inside it;
 *  Hiệu trưởng signs the same element (with the teacher's signature), in ChuKyHieuTruong beside it;
 *  the seal signs the whole transcript, in ConDau, last.
 */
export function xmlPlacement(student, role) {
  const { transcript, data } = xmlIds(student);
  if (role === 'teacher') return { reference: data, container: 'ChuKyGVCN' };
  if (role === 'principal') return { reference: data, parent: transcript, container: 'ChuKyHieuTruong' };
  return { reference: transcript, parent: transcript, container: 'ConDau' };
}

export function transcriptXml(student) {
  const { transcript, data } = xmlIds(student);
  const scores = subjects
    .map((s) => `      <MonHoc Ten="${xmlEscape(s)}" DiemTBCN="${xmlEscape(student.scores[s])}"/>`)
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<HocBa xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Id="${transcript}" MaTraCuu="${student.lookupCode}">
  <DuLieuHocBa Id="${data}">
    <Truong Ten="${xmlEscape(school.name)}" MaDonVi="${xmlEscape(school.unitCode)}" Tinh="${xmlEscape(school.province)}"/>
    <NamHoc>${school.schoolYear}</NamHoc>
    <Lop>${school.className}</Lop>
    <HocSinh>
      <HoTen>${xmlEscape(student.fullName)}</HoTen>
      <GioiTinh>${student.gender}</GioiTinh>
      <NgaySinh>${student.birthDate}</NgaySinh>
      <SoDinhDanh>${student.personalId}</SoDinhDanh>
    </HocSinh>
    <KetQua>
${scores}
      <DiemTrungBinh>${student.average}</DiemTrungBinh>
      <RenLuyen>${xmlEscape(student.conduct)}</RenLuyen>
      <HocLuc>${xmlEscape(student.result)}</HocLuc>
    </KetQua>
    <GiaoVienChuNhiem>${xmlEscape(school.homeroomTeacher)}</GiaoVienChuNhiem>
  </DuLieuHocBa>
</HocBa>
`;
}

/** "Nguyễn Thị Ánh" -> "Nguyen Thi Anh": the page text uses the standard Helvetica font. */
const ascii = (s) =>
  String(s)
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D')
    .replace(/[^\x20-\x7e]/g, '?');
const pdfText = (s) => ascii(s).replace(/[\\()]/g, (c) => `\\${c}`);

/** UTF-16BE hex string with BOM: the Info dictionary keeps the Vietnamese title exactly. */
function utf16Hex(s) {
  let out = 'FEFF';
  for (let i = 0; i < s.length; i++) out += s.charCodeAt(i).toString(16).padStart(4, '0').toUpperCase();
  return `<${out}>`;
}

/** A one-page PDF 1.7 with a classic cross-reference table. */
export function transcriptPdf(student) {
  const lines = [
    `${school.name} - So Giao duc va Dao tao ${school.province}`,
    `HOC BA SO - Nam hoc ${school.schoolYear} - Lop ${school.className}`,
    `Ho va ten: ${student.fullName}    Gioi tinh: ${student.gender}`,
    `Ngay sinh: ${student.birthDate}    So dinh danh: ${student.personalId}`,
    `Ma tra cuu: ${student.lookupCode}`,
    '',
    ...subjects.map((s) => `${s}: ${student.scores[s]}`),
    '',
    `Diem trung binh: ${student.average}    Ren luyen: ${student.conduct}    Hoc luc: ${student.result}`,
    `Giao vien chu nhiem: ${school.homeroomTeacher}    Hieu truong: ${school.principal}`,
  ];
  const content =
    'BT /F1 12 Tf 56 790 Td 16 TL\n' + lines.map((l) => `(${pdfText(l)}) '`).join('\n') + '\nET\n';
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
    `<< /Length ${content.length} >>\nstream\n${content}endstream`,
    `<< /Title ${utf16Hex(`Học bạ số - ${student.fullName}`)} /Author ${utf16Hex(school.name)} /Producer (Kyso demo) >>`,
  ];
  let pdf = '%PDF-1.7\n%\xE2\xE3\xCF\xD3\n';
  const offsets = [];
  objects.forEach((body, i) => {
    offsets.push(pdf.length);
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) pdf += `${String(o).padStart(10, '0')} 00000 n \n`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  // Every character above is one byte (ASCII, plus the binary comment's four Latin-1 bytes).
  return Uint8Array.from(pdf, (c) => c.charCodeAt(0));
}
