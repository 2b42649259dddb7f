// B-LT and B-LTA: transcripts signed B-T on the fixture token with the loopback TSA, extended by
// `kyso extend` with validation data from `openssl ocsp` on loopback, then verified by
// `kyso verify` with the responders stopped and the clock (faketime) past every certificate's
// expiry: still valid, at the right level, from the document's own data. Removing or altering
// validation data makes it fail and say why. Every extended file still passes pdfsig and qpdf.

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>

#include "format_support.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/xml.hpp"

using kyso::SignAlgorithm;
using namespace kyso::test;

namespace {

std::string cli() {
  return std::getenv("KYSO_CLI");
}

std::string extend_cmd(const std::string& path, const std::string& to, const OcspResponder& ocsp,
                       const LoopbackTsa& tsa, const std::string& extra = "") {
  return cli() + " extend " + path + " --to " + to + " --trust " + pki_path("root") +
         " --ocsp-url " + ocsp.url() + " --tsa " + tsa.url() + " --timeout 5 " + extra + " 2>&1";
}

// Offline verification under faketime: responders gone, clock 20 years ahead (past the root's
// expiry too); the OCSP URL points at a closed port to prove nothing is asked.
std::pair<int, nlohmann::json> verify_later(const std::string& path) {
  const auto [rc, out] = run("faketime -f +20y " + cli() + " verify " + path + " --trust " +
                             pki_path("root") + " --ocsp-url http://127.0.0.1:1/ --json 2>&1");
  INFO(out);
  nlohmann::json j;
  REQUIRE_NOTHROW(j = nlohmann::json::parse(out));
  return {rc, j};
}

std::string verify_text(const std::string& path, const std::string& lang = "en") {
  return run("faketime -f +20y " + cli() + " verify " + path + " --trust " + pki_path("root") +
             " --ocsp-url http://127.0.0.1:1/ --lang " + lang + " 2>&1")
      .second;
}

int pdfsig_valid(const std::string& path) {
  const auto out = run("pdfsig " + path + " 2>&1").second;
  int n = 0;
  for (std::size_t p = 0;
       (p = out.find("Signature Validation: Signature is Valid", p)) != std::string::npos; ++p)
    ++n;
  return n;
}

bool qpdf_check(const std::string& path) {
  return run("qpdf --check " + path + " >/dev/null 2>&1").first == 0;
}

// Teacher, principal and seal, each B-T with the loopback TSA.
void sign_three_bt(const ScratchDir& dir, const LoopbackTsa& tsa, const std::string& out) {
  write_bytes(dir.file("in.pdf"), transcript_pdf(sample_class(1).at(0)));
  kyso::formats::PdfSignOptions o;
  o.tsa = kyso::formats::TsaConfig{.url = tsa.url(), .trusted_pem = {pki_path("root")}};
  kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("r1.pdf"), o);
  o.algorithm = SignAlgorithm::RsaPssSha256;
  kyso::formats::sign_pdf(*demo_signer("principal"), dir.file("r1.pdf"), dir.file("r2.pdf"), o);
  o.algorithm = SignAlgorithm::RsaPkcs1Sha256;
  kyso::formats::sign_pdf(*demo_signer("seal"), dir.file("r2.pdf"), out, o);
}

std::string text_of(const std::string& path) {
  const auto b = read_bytes(path);
  return {b.begin(), b.end()};
}

// The object numbers in the last "/OCSPs [ ... ]" of the file (the newest DSS).
std::vector<std::string> last_dss_ocsps(const std::string& pdf, std::size_t* at = nullptr) {
  const auto p = pdf.rfind("/OCSPs [");
  const auto end = pdf.find(']', p);
  if (at != nullptr) *at = p;
  std::vector<std::string> refs;
  const std::string list = pdf.substr(p + 8, end - p - 8);
  static const std::regex ref(R"((\d+) 0 R)");
  for (std::sregex_iterator it(list.begin(), list.end(), ref), e; it != e; ++it)
    refs.push_back((*it)[1]);
  return refs;
}

struct XmlSigned {
  std::string path;
  std::vector<std::string> ids;  // teacher, principal, seal
};

// The transcript layout of docs/formats.md, each signer XAdES B-T: the teacher's signature is
// covered by the principal's and the seal's, the principal's by the seal's.
XmlSigned sign_three_xades(const ScratchDir& dir, const LoopbackTsa& tsa) {
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = kyso::formats::XmlDocument::parse(
      {reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  kyso::formats::XmlSignOptions o;
  o.level = kyso::formats::XmlLevel::XadesT;
  o.tsa = kyso::formats::TsaConfig{.url = tsa.url(), .trusted_pem = {pki_path("root")}};
  XmlSigned out;
  o.reference_id = t.id + "-dl";
  o.container = "ChuKyGVCN";
  out.ids.push_back(doc.sign(*demo_signer("teacher"), o));
  o.parent_id = t.id;
  o.container = "ChuKyHieuTruong";
  out.ids.push_back(doc.sign(*demo_signer("principal"), o));
  o.reference_id = t.id;
  o.container = "ConDau";
  out.ids.push_back(doc.sign(*demo_signer("seal"), o));
  out.path = dir.file("hocba.xml");
  doc.save(out.path);
  return out;
}

bool xmlsec_ok(const std::string& file, const std::string& sig_id) {
  return run("xmlsec1 --verify --trusted-pem " + pki_path("root") + " --untrusted-pem " +
             pki_path("sub") + " --id-attr:Id HocBa --id-attr:Id DuLieuHocBa" +
             " --node-xpath \"//*[@Id='" + sig_id + "']\" " + file + " >/dev/null 2>&1")
             .first == 0;
}

}  // namespace

TEST_CASE(
    "longterm: three B-T signatures extended to B-LT and B-LTA stay valid offline years "
    "after every certificate expired",
    "[longterm][pades]") {
  ScratchDir dir;
  const std::string lt = dir.file("hocba-lt.pdf");
  const std::string lta = dir.file("hocba-lta.pdf");
  const std::string renewed = dir.file("hocba-renewed.pdf");
  {
    OcspResponder ocsp;
    LoopbackTsa tsa;
    sign_three_bt(dir, tsa, lt);
    const auto bt = read_bytes(lt);

    auto [rc, out] = run(extend_cmd(lt, "lt", ocsp, tsa));
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("B-T -> B-LT") != std::string::npos);
    CHECK(out.find("+ DSS:") != std::string::npos);
    CHECK(out.find("Total: 1 file(s), 1 extended") == std::string::npos);  // Vietnamese default
    CHECK(out.find("Tổng: 1 tệp, 1 đã gia hạn, 0 không cần thay đổi, 0 lỗi") != std::string::npos);
    const auto ltb = read_bytes(lt);
    // Earlier bytes untouched: every signature still covers exactly its revision.
    REQUIRE(ltb.size() > bt.size());
    CHECK(std::equal(bt.begin(), bt.end(), ltb.begin()));
    write_bytes(lta, ltb);

    std::tie(rc, out) = run(extend_cmd(lta, "lta", ocsp, tsa, "--lang en"));
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("B-LT -> B-LTA") != std::string::npos);
    CHECK(out.find("archive timestamp ArchiveTimestamp1") != std::string::npos);
    CHECK(out.find("Total: 1 file(s), 1 extended, 0 unchanged, 0 failed") != std::string::npos);

    // Idempotent: nothing to add a second time.
    const auto before = read_bytes(lta);
    std::tie(rc, out) = run(extend_cmd(lta, "lta", ocsp, tsa, "--lang en"));
    CHECK(rc == 0);
    CHECK(out.find("already B-LTA, unchanged") != std::string::npos);
    CHECK(read_bytes(lta) == before);
    std::tie(rc, out) = run(extend_cmd(lt, "lt", ocsp, tsa, "--lang en"));
    CHECK(out.find("already B-LT, unchanged") != std::string::npos);

    // The renewal IT's timer runs: a second archive timestamp after the first, on a copy.
    write_bytes(renewed, read_bytes(lta));
    std::tie(rc, out) =
        run(extend_cmd(renewed, "lta", ocsp, tsa, "--lang en --renew-before 36500"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("B-LTA -> B-LTA") != std::string::npos);
    CHECK(out.find("archive timestamp ArchiveTimestamp2") != std::string::npos);
  }  // the OCSP responder and the TSA stop here

  for (const auto& f : {lt, lta, renewed}) {
    INFO(f);
    CHECK(pdfsig_valid(f) == 3);
    CHECK(qpdf_check(f));
  }
  auto [rc, j] = verify_later(lt);
  CHECK(rc == 0);
  REQUIRE(j["signatures"].size() == 3);
  for (const auto& s : j["signatures"]) {
    CHECK(s["ok"] == true);
    CHECK(s["level"] == "B-LT");
    CHECK(s["longTerm"]["offline"] == true);
    CHECK(s["revocation"]["detail"].get<std::string>().find("OCSP good") != std::string::npos);
  }
  std::tie(rc, j) = verify_later(lta);
  CHECK(rc == 0);
  REQUIRE(j["signatures"].size() == 3);
  for (const auto& s : j["signatures"]) {
    CHECK(s["ok"] == true);
    CHECK(s["level"] == "B-LTA");
    CHECK(s["longTerm"]["archiveTimestamps"].size() == 1);
    CHECK(s["longTerm"]["coveredUntil"].is_string());
  }
  REQUIRE(j["documentTimestamps"].size() == 1);
  CHECK(j["documentTimestamps"][0]["ok"] == true);
  std::tie(rc, j) = verify_later(renewed);
  CHECK(rc == 0);
  for (const auto& s : j["signatures"]) {
    CHECK(s["ok"] == true);
    CHECK(s["level"] == "B-LTA");
    CHECK(s["longTerm"]["archiveTimestamps"].size() == 2);
  }
  CHECK(j["documentTimestamps"].size() == 2);
  const std::string vi = verify_text(lta, "vi");
  CHECK(vi.find("Mức chữ ký: B-LTA (kiểm tra ngoại tuyến, chỉ bằng dữ liệu trong tài liệu)") !=
        std::string::npos);
  CHECK(vi.find("Kết quả: tất cả chữ ký hợp lệ.") != std::string::npos);
}

TEST_CASE(
    "longterm: an OCSP response removed from the DSS, or one byte of it altered, fails "
    "and says why",
    "[longterm][pades]") {
  ScratchDir dir;
  const std::string lt = dir.file("hocba-lt.pdf");
  {
    OcspResponder ocsp;
    LoopbackTsa tsa;
    sign_three_bt(dir, tsa, lt);
    REQUIRE(run(extend_cmd(lt, "lt", ocsp, tsa)).first == 0);
  }
  const std::string pdf = text_of(lt);
  std::size_t at = 0;
  const auto refs = last_dss_ocsps(pdf, &at);
  REQUIRE(refs.size() >= 4);  // three signers and the TSA

  // Removed: the DSS's list without its first OCSP response (same length, so offsets hold).
  std::string removed = pdf;
  const std::string first = refs[0] + " 0 R ";
  const auto pos = removed.find(first, at);
  removed.replace(pos, first.size(), std::string(first.size(), ' '));
  write_text(dir.file("removed.pdf"), removed);
  auto [rc, j] = verify_later(dir.file("removed.pdf"));
  CHECK(rc == 2);
  int failed = 0;
  for (const auto& s : j["signatures"]) {
    if (s["ok"] == true) continue;
    ++failed;
    CHECK(s["longTerm"]["problem"].get<std::string>().find("no revocation data in the document") !=
          std::string::npos);
  }
  CHECK(failed == 1);
  CHECK(verify_text(dir.file("removed.pdf")).find("Long-term validation data: FAILED") !=
        std::string::npos);

  // Altered: one byte of that OCSP response's signed part (tbsResponseData; the responder
  // certificates after the signature are not signed, and a verifier takes them from the DSS).
  std::string altered = pdf;
  const std::string head = "\n" + refs[0] + " 0 obj\n<< /Length ";
  const auto obj = altered.rfind(head);
  REQUIRE(obj != std::string::npos);
  const auto data = altered.find("stream\n", obj) + 7;
  altered[data + 40] = static_cast<char>(altered[data + 40] ^ 0x01);
  write_text(dir.file("altered.pdf"), altered);
  std::tie(rc, j) = verify_later(dir.file("altered.pdf"));
  CHECK(rc == 2);
  bool said = false;
  for (const auto& s : j["signatures"]) {
    if (s["ok"] == false)
      said = said || std::regex_search(s["longTerm"]["problem"].get<std::string>(),
                                       std::regex("does not verify|cannot be read"));
  }
  CHECK(said);
}

TEST_CASE(
    "longterm: a three-signer XAdES transcript extended to B-LTA keeps all three valid, "
    "offline, after every certificate expired",
    "[longterm][xades]") {
  ScratchDir dir;
  XmlSigned x;
  std::string lt;
  const std::string renewed = dir.file("hocba-renewed.xml");
  {
    OcspResponder ocsp;
    LoopbackTsa tsa;
    x = sign_three_xades(dir, tsa);
    auto [rc, out] = run(extend_cmd(x.path, "lt", ocsp, tsa, "--lang en"));
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("B-T -> B-LT") != std::string::npos);
    lt = text_of(x.path);
    // Only the seal's signature, which nothing covers, was changed: it carries the values.
    CHECK(lt.find("<xades:CertificateValues>") != std::string::npos);
    CHECK(lt.find("<xades:OCSPValues>") != std::string::npos);
    for (const auto& id : x.ids) CHECK(xmlsec_ok(x.path, id));

    std::tie(rc, out) = run(extend_cmd(x.path, "lta", ocsp, tsa, "--lang en"));
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("B-LT -> B-LTA") != std::string::npos);
    CHECK(text_of(x.path).find("xadesv141:ArchiveTimeStamp") != std::string::npos);
    for (const auto& id : x.ids) CHECK(xmlsec_ok(x.path, id));
    const auto before = read_bytes(x.path);
    std::tie(rc, out) = run(extend_cmd(x.path, "lta", ocsp, tsa, "--lang en"));
    CHECK(out.find("already B-LTA, unchanged") != std::string::npos);
    CHECK(read_bytes(x.path) == before);

    // The renewal, on a copy: a second archive timestamp; xmlsec1 still verifies all three.
    write_bytes(renewed, before);
    std::tie(rc, out) =
        run(extend_cmd(renewed, "lta", ocsp, tsa, "--lang en --renew-before 36500"));
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("B-LTA -> B-LTA") != std::string::npos);
    for (const auto& id : x.ids) CHECK(xmlsec_ok(renewed, id));
  }
  {
    auto [rc, j] = verify_later(renewed);
    CHECK(rc == 0);
    for (const auto& s : j["signatures"]) {
      INFO(s.dump(2));
      CHECK(s["ok"] == true);
      CHECK(s["level"] == "B-LTA");
      CHECK(s["longTerm"]["archiveTimestamps"].size() == 2);
    }
  }
  auto [rc, j] = verify_later(x.path);
  CHECK(rc == 0);
  REQUIRE(j["signatures"].size() == 3);
  for (const auto& s : j["signatures"]) {
    INFO(s.dump(2));
    CHECK(s["ok"] == true);
    CHECK(s["level"] == "B-LTA");
    CHECK(s["longTerm"]["offline"] == true);
  }
  // The B-LT state, with one byte of the seal's OCSP values altered: the check says why.
  const auto p = lt.find("<xades:EncapsulatedOCSPValue>") + 29 + 40;
  lt[p] = lt[p] == 'A' ? 'B' : 'A';
  write_text(dir.file("altered.xml"), lt);
  std::tie(rc, j) = verify_later(dir.file("altered.xml"));
  CHECK(rc == 2);
  bool said = false;
  for (const auto& s : j["signatures"]) {
    if (s["ok"] == false)
      said = said || std::regex_search(s["longTerm"]["problem"].get<std::string>(),
                                       std::regex("does not verify|cannot be read|no revocation"));
  }
  CHECK(said);
}

TEST_CASE(
    "longterm: CAdES B-T extended to B-LT and B-LTA verifies with openssl cms and offline "
    "after every certificate expired",
    "[longterm][cms]") {
  ScratchDir dir;
  const std::string attached = dir.file("hocba.p7m");
  const std::string detached = dir.file("hocba.p7s");
  const std::string content = dir.file("hocba.xml");
  const std::string lt_copy = dir.file("hocba-lt.p7m");
  const auto xml = transcript_xml(sample_class(1).at(0));
  write_text(content, xml);
  const std::string verify_tool = "openssl cms -verify -binary -inform DER -purpose any -CAfile " +
                                  pki_path("root") + " -certfile " + pki_path("sub");
  {
    OcspResponder ocsp;
    LoopbackTsa tsa;
    kyso::formats::CmsOptions o;
    o.tsa = kyso::formats::TsaConfig{.url = tsa.url(), .trusted_pem = {pki_path("root")}};
    const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(xml.data()),
                                              xml.size()};
    o.detached = false;
    write_bytes(attached, kyso::formats::sign_cms(*demo_signer("seal"), bytes, o));
    o.detached = true;
    write_bytes(detached, kyso::formats::sign_cms(*demo_signer("teacher"), bytes, o));

    for (const auto& [file, extra] :
         {std::pair{attached, std::string()}, std::pair{detached, " --content " + content}}) {
      auto [rc, out] = run(extend_cmd(file, "lt", ocsp, tsa, "--lang en" + extra));
      INFO(out);
      CHECK(rc == 0);
      CHECK(out.find("B-T -> B-LT") != std::string::npos);
      if (file == attached) write_bytes(lt_copy, read_bytes(attached));
      std::tie(rc, out) = run(extend_cmd(file, "lta", ocsp, tsa, "--lang en" + extra));
      CHECK(rc == 0);
      CHECK(out.find("B-LT -> B-LTA") != std::string::npos);
      std::tie(rc, out) = run(extend_cmd(file, "lta", ocsp, tsa, "--lang en" + extra));
      CHECK(out.find("already B-LTA, unchanged") != std::string::npos);
    }
    // A detached signature without its content cannot be archived: said so, file untouched.
    const auto before = read_bytes(detached);
    auto [rc, out] = run(extend_cmd(detached, "lta", ocsp, tsa, "--lang en --renew-before 36500"));
    CHECK(rc == 2);
    CHECK(out.find("--content") != std::string::npos);
    CHECK(read_bytes(detached) == before);
  }
  CHECK(run(verify_tool + " -in " + attached + " -out /dev/null 2>&1").first == 0);
  CHECK(run(verify_tool + " -in " + detached + " -content " + content + " -out /dev/null 2>&1")
            .first == 0);
  auto [rc, j] = verify_later(attached);
  CHECK(rc == 0);
  REQUIRE(j["signatures"].size() == 1);
  CHECK(j["signatures"][0]["level"] == "B-LTA");
  CHECK(j["signatures"][0]["ok"] == true);
  const auto [rc2, out2] =
      run("faketime -f +20y " + cli() + " verify " + detached + " --content " + content +
          " --trust " + pki_path("root") + " --ocsp-url http://127.0.0.1:1/ --json 2>&1");
  INFO(out2);
  CHECK(rc2 == 0);
  CHECK(out2.find("\"level\": \"B-LTA\"") != std::string::npos);
  // The renewal: a new archive timestamp when the last one's certificate expires within the
  // window (here: always), the earlier one kept.
  {
    OcspResponder ocsp;
    LoopbackTsa tsa;
    const auto [rc3, out3] =
        run(extend_cmd(attached, "lta", ocsp, tsa, "--lang en --renew-before 36500"));
    INFO(out3);
    CHECK(rc3 == 0);
    CHECK(out3.find("B-LTA -> B-LTA") != std::string::npos);
  }
  std::tie(rc, j) = verify_later(attached);
  CHECK(rc == 0);
  CHECK(j["signatures"][0]["longTerm"]["archiveTimestamps"].size() == 2);

  // The B-LT state, with one byte of an OCSP response in SignedData.crls altered (inside its
  // tbsResponseData, after the RFC 5940 id-ri-ocsp-response OID): the signature itself still
  // verifies, the long-term check fails and says why.
  auto der = read_bytes(lt_copy);
  const std::vector<std::uint8_t> ri_ocsp = {0x06, 0x08, 0x2B, 0x06, 0x01,
                                             0x05, 0x05, 0x07, 0x10, 0x02};
  const auto at = std::search(der.begin(), der.end(), ri_ocsp.begin(), ri_ocsp.end());
  REQUIRE(at != der.end());
  const auto off = static_cast<std::size_t>(at - der.begin()) + ri_ocsp.size() + 60;
  REQUIRE(off < der.size());
  der[off] ^= 0x01;
  write_bytes(dir.file("altered.p7m"), der);
  CHECK(run(verify_tool + " -in " + dir.file("altered.p7m") + " -out /dev/null 2>&1").first == 0);
  std::tie(rc, j) = verify_later(dir.file("altered.p7m"));
  CHECK(rc == 2);
  REQUIRE(j["signatures"].size() == 1);
  CHECK(j["signatures"][0]["ok"] == false);
  CHECK(std::regex_search(j["signatures"][0]["longTerm"]["problem"].get<std::string>(),
                          std::regex("does not verify|cannot be read|no revocation")));
  CHECK(run(verify_tool + " -in " + attached + " -out /dev/null 2>&1").first == 0);
}
