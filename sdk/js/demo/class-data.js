// The demo class: Lớp 12A1, Trường THPT Chu Văn An, năm học 2025-2026. Invented people; the
// numbers are made deterministic (seeded) so every run hashes the same transcripts.

export const school = {
  name: 'Trường THPT Chu Văn An',
  unitCode: 'MNS:1047665',
  province: 'Hà Nội',
  className: '12A1',
  schoolYear: '2025-2026',
  homeroomTeacher: 'Nguyễn Thị Ánh',
  principal: 'Trần Văn Bình',
};

const names = [
  ['Nguyễn Hoàng', 'An', 'Nam'],
  ['Trần Ngọc', 'Anh', 'Nữ'],
  ['Lê Minh', 'Anh', 'Nam'],
  ['Phạm Thị Ngọc', 'Ánh', 'Nữ'],
  ['Vũ Gia', 'Bảo', 'Nam'],
  ['Đặng Thùy', 'Chi', 'Nữ'],
  ['Bùi Đức', 'Cường', 'Nam'],
  ['Hoàng Thị Thu', 'Dung', 'Nữ'],
  ['Ngô Quang', 'Dũng', 'Nam'],
  ['Đỗ Thành', 'Đạt', 'Nam'],
  ['Phan Hương', 'Giang', 'Nữ'],
  ['Nguyễn Thu', 'Hà', 'Nữ'],
  ['Trịnh Minh', 'Hải', 'Nam'],
  ['Lý Thị', 'Hằng', 'Nữ'],
  ['Đinh Trung', 'Hiếu', 'Nam'],
  ['Mai Thanh', 'Hoa', 'Nữ'],
  ['Dương Việt', 'Hoàng', 'Nam'],
  ['Nguyễn Quốc', 'Huy', 'Nam'],
  ['Lê Thanh', 'Huyền', 'Nữ'],
  ['Trần Đăng', 'Khoa', 'Nam'],
  ['Phạm Tuấn', 'Kiệt', 'Nam'],
  ['Võ Ngọc', 'Lan', 'Nữ'],
  ['Hồ Diệu', 'Linh', 'Nữ'],
  ['Nguyễn Khánh', 'Linh', 'Nữ'],
  ['Tạ Đức', 'Long', 'Nam'],
  ['Cao Thị', 'Mai', 'Nữ'],
  ['Lương Nhật', 'Minh', 'Nam'],
  ['Đào Hà', 'My', 'Nữ'],
  ['Nguyễn Phương', 'Nam', 'Nam'],
  ['Kiều Bảo', 'Ngọc', 'Nữ'],
  ['Trương Thảo', 'Nguyên', 'Nữ'],
  ['Hà Minh', 'Nhật', 'Nam'],
  ['Phùng Yến', 'Nhi', 'Nữ'],
  ['Lê Hồng', 'Phúc', 'Nam'],
  ['Chu Minh', 'Quân', 'Nam'],
  ['Nguyễn Như', 'Quỳnh', 'Nữ'],
  ['Vương Đức', 'Thắng', 'Nam'],
  ['Đoàn Phương', 'Thảo', 'Nữ'],
  ['Tô Thanh', 'Tùng', 'Nam'],
  ['Quách Hải', 'Yến', 'Nữ'],
];

export const subjects = [
  'Toán', 'Ngữ văn', 'Tiếng Anh', 'Lịch sử', 'Vật lí', 'Hóa học', 'Sinh học', 'Tin học',
  'Giáo dục kinh tế và pháp luật', 'Giáo dục thể chất',
];

// mulberry32: a tiny seeded PRNG, enough to make stable demo numbers (and bench/soak's choices
// repeat from its --seed).
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uuidFrom(r) {
  const hex = Array.from({ length: 32 }, () => Math.floor(r() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${'89ab'[Math.floor(r() * 4)]}${hex.slice(17, 20)}-${hex.slice(20)}`;
}

/** The 40 students with their 2025-2026 results, in class-list order. */
export const students = names.map(([family, given, gender], i) => {
  const r = rng(20252026 + i * 7919);
  const day = 1 + Math.floor(r() * 28);
  const month = 1 + Math.floor(r() * 12);
  const scores = {};
  for (const s of subjects) {
    scores[s] = s === 'Giáo dục thể chất' ? 'Đạt' : Math.round((6 + r() * 4) * 10) / 10;
  }
  const numeric = Object.values(scores).filter((v) => typeof v === 'number');
  const average = Math.round((numeric.reduce((a, b) => a + b, 0) / numeric.length) * 10) / 10;
  return {
    no: i + 1,
    fullName: `${family} ${given}`,
    givenName: given,
    gender,
    birthDate: `2008-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`,
    // Citizen ID (CCCD): province 001 (Hà Nội), century/gender digit, birth year 08, random tail.
    personalId: `001${gender === 'Nữ' ? '3' : '2'}08${String(Math.floor(r() * 1e6)).padStart(6, '0')}`,
    lookupCode: uuidFrom(r),
    scores,
    average,
    conduct: average >= 8 ? 'Tốt' : 'Khá',
    result: average >= 8 ? 'Giỏi' : average >= 6.5 ? 'Khá' : 'Đạt',
  };
});

/** The transcript record that gets hashed and signed, as the school's server would send it. */
export function transcriptOf(student) {
  return {
    type: 'hoc-ba-so',
    version: 1,
    lookupCode: student.lookupCode,
    school: { name: school.name, unitCode: school.unitCode, province: school.province },
    student: {
      fullName: student.fullName,
      gender: student.gender,
      birthDate: student.birthDate,
      personalId: student.personalId,
    },
    year: {
      schoolYear: school.schoolYear,
      className: school.className,
      homeroomTeacher: school.homeroomTeacher,
      scores: student.scores,
      average: student.average,
      conduct: student.conduct,
      result: student.result,
    },
  };
}
