#include "format_support.hpp"

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/xml.hpp"
#include "kyso/pkcs11/library.hpp"
#include "pdf_writer.hpp"

namespace kyso::test {
namespace {

pkcs11::Library& library(bool fault) {
  static std::mutex m;
  // Never destroyed: the module must not be finalized during static destruction, after
  // SoftHSM2's own globals are gone.
  static auto* libs = new std::map<bool, std::unique_ptr<pkcs11::Library>>();
  const std::scoped_lock lock(m);
  auto& lib = (*libs)[fault];
  if (!lib) {
    const auto& f = fixture();
    lib = std::make_unique<pkcs11::Library>(pkcs11::ModuleConfig{
        .paths = {fault ? f.fault_module : f.module}, .use_p11kit = false, .use_known = false});
  }
  return *lib;
}

std::string fmt_score(double v) {
  std::array<char, 16> buf{};
  std::snprintf(buf.data(), buf.size(), "%.1f", v);
  return buf.data();
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string transcript_element(const Transcript& t) {
  std::ostringstream x;
  x << "<HocBa Id=\"" << t.id << "\" MaTraCuu=\"" << t.lookup << "\">\n"
    << "<DuLieuHocBa Id=\"" << t.id << "-dl\">\n"
    << "  <Truong><Ten>Trường THPT Chu Văn An</Ten><MaTruong>01000123</MaTruong>"
    << "<SoGD>Sở Giáo dục và Đào tạo Hà Nội</SoGD></Truong>\n"
    << "  <HocSinh><HoTen>" << xml_escape(t.name) << "</HoTen><SoDinhDanh>" << t.citizen_id
    << "</SoDinhDanh><NgaySinh>" << t.birth_date << "</NgaySinh><GioiTinh>" << t.gender
    << "</GioiTinh><NoiSinh>Quận Ba Đình, Hà Nội</NoiSinh></HocSinh>\n"
    << "  <NamHoc>2025-2026</NamHoc><Lop>10A1</Lop>\n  <KetQuaHocTap>\n";
  for (const auto& [subject, score] : t.scores) {
    x << "    <Mon Ten=\"" << subject << "\" DiemTBCN=\"" << fmt_score(score) << "\"/>\n";
  }
  x << "  </KetQuaHocTap>\n  <RenLuyen>" << t.conduct << "</RenLuyen><KetQuaCaNam>" << t.result
    << "</KetQuaCaNam>\n  <NhanXet>Chăm ngoan, tích cực tham gia hoạt động của lớp &amp; "
       "trường.</NhanXet>\n"
    << "</DuLieuHocBa>\n</HocBa>";
  return x.str();
}

}  // namespace

std::vector<std::size_t> run_all(const std::vector<std::string>& commands) {
  std::vector<std::size_t> failed;
  constexpr std::size_t kBatch = 4;
  for (std::size_t i = 0; i < commands.size(); i += kBatch) {
    std::string script;
    for (std::size_t k = i; k < std::min(commands.size(), i + kBatch); ++k) {
      script += "( " + commands[k] + " >/dev/null 2>&1 || echo " + std::to_string(k) + " ) & ";
    }
    script += "wait";
    const auto [rc, out] = run(script);
    std::istringstream in(out);
    for (std::size_t k = 0; in >> k;) failed.push_back(k);
  }
  return failed;
}

std::shared_ptr<Signer> demo_signer(const std::string& name, bool fault) {
  // SoftHSM2's file store is shared by the test processes ctest runs in parallel; a listing
  // taken while another process rewrites an object file can miss it, so look again.
  std::shared_ptr<Signer> signer;
  for (int attempt = 0;; ++attempt) {
    try {
      signer = library(fault).signer(fixture().credential(name).credential_id());
      break;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::CredentialNotFound || attempt == 10) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (signer->auth_required() == AuthKind::Pin) {
    Secret pin;
    pin.assign(fixture().user_pin);
    signer->authorize({.pin = &pin}, {});
  }
  return signer;
}

std::string pki_path(const std::string& key) {
  return fixture().manifest.at("pki").at(key).get<std::string>();
}

ScratchDir::ScratchDir() {
  std::array<unsigned char, 6> r{};
  random_bytes(r);
  path_ = std::filesystem::path(fixture().dir) / ("formats-" + to_hex(r));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  if (std::getenv("KYSO_KEEP_SCRATCH") == nullptr) std::filesystem::remove_all(path_, ec);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, std::span<const std::uint8_t> data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void write_text(const std::string& path, std::string_view text) {
  write_bytes(path, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

void flip_byte(const std::string& path, long offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(offset, offset < 0 ? std::ios::end : std::ios::beg);
  const auto pos = f.tellg();
  char c = 0;
  f.get(c);
  f.seekp(pos);
  f.put(static_cast<char>(c ^ 0x01));
}

std::vector<Transcript> sample_class(std::size_t n) {
  static const std::array<const char*, 10> family{"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng",
                                                  "Huỳnh",  "Phan", "Vũ", "Võ",   "Đặng"};
  static const std::array<const char*, 8> middle{"Văn", "Thị",  "Minh", "Thu",
                                                 "Đức", "Ngọc", "Quốc", "Hải"};
  static const std::array<const char*, 12> given{
      "An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Khánh", "Linh", "Mỹ", "Phương", "Quân", "Tuấn"};
  static const std::array<const char*, 10> subjects{
      "Toán",     "Ngữ văn", "Tiếng Anh", "Vật lí",  "Hóa học",
      "Sinh học", "Lịch sử", "Địa lí",    "Tin học", "Giáo dục kinh tế và pháp luật"};
  std::vector<Transcript> out;
  for (std::size_t i = 0; i < n; ++i) {
    Transcript t;
    t.id = (i + 1 < 10 ? "hb-0" : "hb-") + std::to_string(i + 1);
    const std::string seed = "kyso-10A1-" + std::to_string(i);
    const std::string h =
        to_hex(sha256({reinterpret_cast<const std::uint8_t*>(seed.data()), seed.size()}));
    t.lookup = h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" +
               h.substr(17, 3) + "-" + h.substr(20, 12);
    t.name = std::string(family[i % family.size()]) + " " + middle[(i / 3) % middle.size()] + " " +
             given[(i * 7) % given.size()];
    t.citizen_id = "0012100" + std::to_string(10000 + i);
    t.birth_date = "2010-" + std::string(i % 12 < 9 ? "0" : "") + std::to_string(i % 12 + 1) + "-" +
                   std::to_string(10 + i % 18);
    t.gender = (i % 2 == 0) ? "Nam" : "Nữ";
    for (std::size_t s = 0; s < subjects.size(); ++s) {
      t.scores.emplace_back(subjects[s], 5.0 + static_cast<double>((i * 13 + s * 7) % 50) / 10.0);
    }
    t.conduct = (i % 5 == 0) ? "Khá" : "Tốt";
    t.result = "Lên lớp";
    out.push_back(std::move(t));
  }
  return out;
}

std::string transcript_xml(const Transcript& t) {
  // An xmlns:xsi on the root: inclusive C14N must carry it into every signed subtree.
  std::string e = transcript_element(t);
  e.insert(6, " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"");
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + e + "\n";
}

std::string class_xml(const std::vector<Transcript>& ts) {
  std::string x =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DanhSachHocBa "
      "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" Id=\"lop-10A1\" "
      "Truong=\"Trường THPT Chu Văn An\" NamHoc=\"2025-2026\">\n";
  for (const auto& t : ts) x += transcript_element(t) + "\n";
  return x + "</DanhSachHocBa>\n";
}

Bytes transcript_pdf(const Transcript& t, bool xref_stream, std::size_t padding) {
  PdfPage page;
  page.title = "Học bạ số - " + t.name;
  page.lines = {"Trường THPT Chu Văn An - Sở Giáo dục và Đào tạo Hà Nội",
                "Năm học 2025-2026, lớp 10A1", "Họ và tên: " + t.name + "   Giới tính: " + t.gender,
                "Số định danh: " + t.citizen_id + "   Ngày sinh: " + t.birth_date,
                "Mã tra cứu: " + t.lookup};
  for (const auto& [subject, score] : t.scores)
    page.lines.push_back(subject + ": " + fmt_score(score));
  page.lines.push_back("Rèn luyện: " + t.conduct + "   Kết quả cả năm: " + t.result);
  std::ostringstream out;
  write_pdf(out, page, xref_stream, padding);
  const std::string s = out.str();
  return {s.begin(), s.end()};
}

std::string signed_transcript_xml(const ScratchDir& dir, const TranscriptSigners& s) {
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = kyso::formats::XmlDocument::parse(
      {reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  kyso::formats::XmlSignOptions o;
  if (!s.tsa_url.empty()) {
    o.level = kyso::formats::XmlLevel::XadesT;
    o.tsa = kyso::formats::TsaConfig{};
    o.tsa->url = s.tsa_url;
  }
  const std::vector<std::string> containers = {"ChuKyGVCN", "ChuKyHieuTruong", "ConDau"};
  for (std::size_t i = 0; i < s.names.size() && i < 3; ++i) {
    o.reference_id = i < 2 ? t.id + "-dl" : t.id;
    if (i > 0) o.parent_id = t.id;
    o.container = containers[i];
    o.algorithm = i == 1 ? SignAlgorithm::RsaPssSha256 : SignAlgorithm::RsaPkcs1Sha256;
    doc.sign(*demo_signer(s.names[i]), o);
  }
  const auto path = dir.file("hocba.xml");
  doc.save(path);
  return path;
}

std::string signed_transcript_pdf(const ScratchDir& dir, const TranscriptSigners& s) {
  std::string in = dir.file("in.pdf");
  write_bytes(in, transcript_pdf(sample_class(1).at(0)));
  kyso::formats::PdfSignOptions o;
  if (!s.tsa_url.empty()) {
    o.tsa = kyso::formats::TsaConfig{};
    o.tsa->url = s.tsa_url;
  }
  for (std::size_t i = 0; i < s.names.size(); ++i) {
    const std::string out = i + 1 == s.names.size()
                                ? dir.file("hocba.pdf")
                                : dir.file("r" + std::to_string(i + 1) + ".pdf");
    o.algorithm = i == 1 ? SignAlgorithm::RsaPssSha256 : SignAlgorithm::RsaPkcs1Sha256;
    kyso::formats::sign_pdf(*demo_signer(s.names[i]), in, out, o);
    in = out;
  }
  return dir.file("hocba.pdf");
}

void append_pdf_revision(const std::string& path, const std::map<int, std::string>& objects) {
  const auto bytes = read_bytes(path);
  const std::string pdf(bytes.begin(), bytes.end());
  std::smatch m;
  const std::string tail = pdf.substr(pdf.rfind("trailer"));
  if (!std::regex_search(tail, m, std::regex(R"(/Size (\d+))"))) throw std::runtime_error("/Size");
  int size = std::stoi(m[1]);
  if (!std::regex_search(tail, m, std::regex(R"(startxref\s+(\d+))"))) {
    throw std::runtime_error("startxref");
  }
  const std::string prev = m[1];
  std::string update;
  std::map<int, std::size_t> offsets;
  for (const auto& [num, body] : objects) {
    offsets[num] = pdf.size() + update.size();
    update += std::to_string(num) + " 0 obj\n" + body + "\nendobj\n";
    size = std::max(size, num + 1);
  }
  const std::size_t xref = pdf.size() + update.size();
  update += "xref\n";
  for (const auto& [num, off] : offsets) {
    std::string o = std::to_string(off);
    update += std::to_string(num) + " 1\n" + std::string(10 - o.size(), '0') + o + " 00000 n \n";
  }
  update += "trailer\n<< /Size " + std::to_string(size) + " /Root 1 0 R /Info 6 0 R /Prev " + prev +
            " >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  write_text(path, pdf + update);
}

}  // namespace kyso::test
