// Enveloped XML-DSig (Vietnamese transcript profile) and XAdES, teacher -> principal -> seal on
// the fixture token; every signature verified in place by xmlsec1 (and RSA-PSS, which xmlsec1
// 1.2 lacks, by lxml's C14N + openssl).

#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "format_support.hpp"
#include "kyso/formats/xml.hpp"

using kyso::SignAlgorithm;
using kyso::formats::XmlDocument;
using kyso::formats::XmlLevel;
using kyso::formats::XmlSignOptions;
using namespace kyso::test;

namespace {

XmlSignOptions opts(SignAlgorithm alg, std::string ref, std::string parent, std::string container,
                    XmlLevel level = XmlLevel::Dsig) {
  XmlSignOptions o;
  o.algorithm = alg;
  o.reference_id = std::move(ref);
  o.parent_id = std::move(parent);
  o.container = std::move(container);
  o.level = level;
  return o;
}

std::string xmlsec_verify(const std::string& file, const std::string& sig_id) {
  return "xmlsec1 --verify --trusted-pem " + pki_path("root") + " --untrusted-pem " +
         pki_path("sub") +
         " --id-attr:Id HocBa --id-attr:Id DuLieuHocBa --id-attr:Id DanhSachHocBa" +
         " --node-xpath \"//*[@Id='" + sig_id + "']\" " + file + " 2>&1";
}

std::string lxml_check(const std::string& file, const std::string& sig_id) {
  return std::string("/usr/bin/python3 ") + KYSO_FORMATS_TEST_SRC + "/xmldsig_check.py " + file +
         " " + sig_id + " " + pki_path("root") + " " + pki_path("sub") + " 2>&1";
}

struct Ids {
  std::string teacher, principal, seal;
};

// The three roles on one transcript, each in its own role-named container:
//  teacher   signs the data element, Signature inside it (enveloped);
//  principal signs the data element (with the teacher's signature), beside it;
//  seal      signs the whole transcript, last.
Ids sign_three(XmlDocument& doc, const std::string& id, SignAlgorithm principal_alg) {
  Ids ids;
  ids.teacher = doc.sign(*demo_signer("teacher"),
                         opts(SignAlgorithm::RsaPkcs1Sha256, id + "-dl", "", "ChuKyGVCN"));
  ids.principal =
      doc.sign(*demo_signer("principal"), opts(principal_alg, id + "-dl", id, "ChuKyHieuTruong"));
  ids.seal = doc.sign(*demo_signer("seal"), opts(SignAlgorithm::RsaPkcs1Sha256, id, id, "ConDau"));
  return ids;
}

}  // namespace

TEST_CASE("xml: 40 transcripts signed teacher, principal, seal all verify with xmlsec1",
          "[xades]") {
  ScratchDir dir;
  std::vector<std::string> checks;
  for (const auto& t : sample_class(40)) {
    const auto xml = transcript_xml(t);
    auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
    const Ids ids = sign_three(doc, t.id, SignAlgorithm::RsaPkcs1Sha256);
    const auto path = dir.file(t.id + ".xml");
    doc.save(path);
    for (const auto& sig : {ids.teacher, ids.principal, ids.seal})
      checks.push_back(xmlsec_verify(path, sig));
  }
  REQUIRE(checks.size() == 120);
  const auto failed = run_all(checks);
  for (auto i : failed) INFO(checks[i] << "\n" << run(checks[i]).second);
  CHECK(failed.empty());
}

TEST_CASE("xml: one byte changed in a transcript breaks its three signatures only", "[xades]") {
  ScratchDir dir;
  const auto ts = sample_class(2);
  const auto xml = class_xml(ts);
  auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  const Ids a = sign_three(doc, ts[0].id, SignAlgorithm::RsaPkcs1Sha256);
  const Ids b = sign_three(doc, ts[1].id, SignAlgorithm::RsaPkcs1Sha256);
  const auto path = dir.file("lop.xml");
  doc.save(path);
  for (const auto& sig : {a.teacher, a.principal, a.seal, b.teacher, b.principal, b.seal}) {
    CHECK(run(xmlsec_verify(path, sig)).first == 0);
  }
  // A score of the first student: "DiemTBCN=\"x.y\"" -> one digit changed.
  auto bytes = read_bytes(path);
  std::string s(bytes.begin(), bytes.end());
  const auto pos = s.find("DiemTBCN=\"") + 10;
  s[pos] = s[pos] == '9' ? '8' : static_cast<char>(s[pos] + 1);
  write_text(path, s);
  for (const auto& sig : {a.teacher, a.principal, a.seal}) {
    const auto [rc, out] = run(xmlsec_verify(path, sig));
    INFO(out);
    CHECK(rc != 0);
  }
  for (const auto& sig : {b.teacher, b.principal, b.seal})
    CHECK(run(xmlsec_verify(path, sig)).first == 0);
}

TEST_CASE("xml: RSA-PSS and ECDSA signatures verify independently", "[xades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  // ECDSA (raw r||s) on its own copy: a subject teacher (GVBM) signing first, enveloped.
  auto ec_doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  const auto ec = ec_doc.sign(*demo_signer("teacher-ec"),
                              opts(SignAlgorithm::EcdsaSha256, t.id + "-dl", "", "ChuKyGVBM"));
  ec_doc.save(dir.file("ec.xml"));
  {
    const auto [rc, out] = run(xmlsec_verify(dir.file("ec.xml"), ec));
    INFO(out);
    CHECK(rc == 0);
  }
  const Ids ids = sign_three(doc, t.id, SignAlgorithm::RsaPssSha256);
  const auto path = dir.file("pss.xml");
  doc.save(path);
  for (const auto& sig : {ids.teacher, ids.seal}) {
    const auto [rc, out] = run(xmlsec_verify(path, sig));
    INFO(sig << "\n" << out);
    CHECK(rc == 0);
  }
  for (const auto& sig : {ids.principal, ids.teacher, ids.seal}) {
    const auto [rc, out] = run(lxml_check(path, sig));
    INFO(sig << "\n" << out);
    CHECK(rc == 0);
  }
  const auto bytes = read_bytes(path);
  flip_byte(path, static_cast<long>(std::string(bytes.begin(), bytes.end()).find("Toán")));
  CHECK(run(lxml_check(path, ids.principal)).first != 0);
}

TEST_CASE("xml: the whole class in one file, 120 signatures, all verify", "[xades]") {
  ScratchDir dir;
  const auto ts = sample_class(40);
  const auto xml = class_xml(ts);
  auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  std::vector<std::string> sigs;
  auto teacher = demo_signer("teacher");
  auto principal = demo_signer("principal");
  auto seal = demo_signer("seal");
  // In batch order: the teacher signs the class, then the principal approves it, then the seal.
  for (const auto& t : ts)
    sigs.push_back(
        doc.sign(*teacher, opts(SignAlgorithm::RsaPkcs1Sha256, t.id + "-dl", "", "ChuKyGVCN")));
  for (const auto& t : ts)
    sigs.push_back(doc.sign(
        *principal, opts(SignAlgorithm::RsaPkcs1Sha256, t.id + "-dl", t.id, "ChuKyHieuTruong")));
  for (const auto& t : ts)
    sigs.push_back(doc.sign(*seal, opts(SignAlgorithm::RsaPkcs1Sha256, t.id, t.id, "ConDau")));
  const auto path = dir.file("lop-10A1.xml");
  doc.save(path);
  // xmlsec1 on the first, a middle and the last transcript's three signatures (the test above
  // runs it on all 120 of the per-transcript files); kyso verify on all 120 in this file.
  std::vector<std::string> checks;
  for (std::size_t t : {std::size_t{0}, std::size_t{19}, std::size_t{39}}) {
    for (std::size_t role = 0; role < 3; ++role)
      checks.push_back(xmlsec_verify(path, sigs[role * 40 + t]));
  }
  CHECK(run_all(checks).empty());
  const auto [rc, out] = run(std::string(std::getenv("KYSO_CLI")) + " verify " + path +
                             " --json --trust " + pki_path("root") + " --no-revocation");
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["signatures"].size() == 120);
  CHECK(j["ok"] == true);
}

TEST_CASE("xml: XAdES B-B and B-T verify with xmlsec1 and carry a valid timestamp",
          "[xades][tsa]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  const auto b = doc.sign(*demo_signer("teacher"), opts(SignAlgorithm::RsaPkcs1Sha256, t.id + "-dl",
                                                        "", "ChuKyGVCN", XmlLevel::XadesB));
  auto o = opts(SignAlgorithm::RsaPkcs1Sha256, t.id, t.id, "ConDau", XmlLevel::XadesT);
  o.tsa = kyso::formats::TsaConfig{};
  o.tsa->url = tsa.url();
  o.tsa->trusted_pem = {pki_path("root")};
  const auto bt = doc.sign(*demo_signer("seal"), o);
  CHECK(tsa.requests() == 1);
  const auto path = dir.file("xades.xml");
  doc.save(path);
  for (const auto& sig : {b, bt}) {
    const auto [rc, out] = run(xmlsec_verify(path, sig));
    INFO(sig << "\n" << out);
    CHECK(rc == 0);
  }
  const auto bytes = read_bytes(path);
  const std::string s(bytes.begin(), bytes.end());
  CHECK(s.find("<xades:SigningCertificateV2>") != std::string::npos);
  CHECK(s.find("<xades:EncapsulatedTimeStamp>") != std::string::npos);
}

TEST_CASE("xml: malformed XML and unknown ids are refused with clear errors", "[xades]") {
  const std::string bad = "<HocBa Id=\"a\"><DuLieuHocBa>Nguyễn</HocBa>";
  try {
    (void)XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size()});
    FAIL("parsed malformed XML");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::DocumentInvalid);
    CHECK(e.detail().find("line") != std::string::npos);
  }
  const std::string dup = "<a><b Id=\"x\"/><c Id=\"x\"/></a>";
  CHECK_THROWS_AS(
      XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(dup.data()), dup.size()}),
      kyso::Error);
  const std::string ok = "<a Id=\"x\"/>";
  auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size()});
  CHECK_THROWS_AS(
      doc.sign(*demo_signer("teacher"), opts(SignAlgorithm::RsaPkcs1Sha256, "nope", "", "")),
      kyso::Error);
  // A failed signature leaves the document as it was.
  CHECK_THROWS_AS(doc.sign(*demo_signer("teacher"), opts(SignAlgorithm::EcdsaSha256, "x", "", "C")),
                  kyso::Error);
  const auto out = doc.serialize();
  CHECK(std::string(out.begin(), out.end()).find("Signature") == std::string::npos);
}

TEST_CASE("xml: namespaces, undeclared defaults, escapes and comments in the signed data verify",
          "[xades]") {
  // The signing side canonicalizes elements, text and plain attributes itself and leaves
  // comments, CDATA and namespaced attributes to libxml2: both kinds, checked by xmlsec1.
  ScratchDir dir;
  const std::string plain =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<hb:DanhSachHocBa xmlns:hb=\"urn:moet:hocba\" xmlns=\"urn:default\" xmlns:z=\"urn:z\">\n"
      "  <HocBa Id=\"hb-1\" b=\"2\" a=\"1 &amp; &lt; &gt; &quot; tab&#9;nl&#10;cr&#13;\">\n"
      "    <DuLieuHocBa Id=\"hb-1-dl\" xmlns:a=\"urn:a\" xmlns=\"\" Lop=\"10A1\" Khoi='10'>\r\n"
      "      <Ten>Nguyễn &amp; &lt;An&gt; \"q\" 'a' cr&#13;end</Ten>\n"
      "      <hb:Mon Ten=\"Toán\"><a:Diem>8.5</a:Diem><z:Empty/></hb:Mon>\n"
      "      <Inner xmlns=\"urn:default\"><Deep x=\"&#x1F600;\"/><a:X xmlns:a=\"urn:a\"/></Inner>\n"
      "    </DuLieuHocBa>\n"
      "  </HocBa>\n"
      "</hb:DanhSachHocBa>\n";
  std::string other = plain;
  other.replace(other.find("<Ten>"), 5, "<!-- ghi chú --><Ten z:kind=\"ho-ten\"><![CDATA[<b>]]>");
  int n = 0;
  for (const auto& xml : {plain, other}) {
    auto doc = XmlDocument::parse({reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
    const auto teacher = doc.sign(*demo_signer("teacher"),
                                  opts(SignAlgorithm::RsaPkcs1Sha256, "hb-1-dl", "", "ChuKyGVCN"));
    const auto seal = doc.sign(*demo_signer("seal"), opts(SignAlgorithm::RsaPkcs1Sha256, "hb-1-dl",
                                                          "hb-1", "ConDau", XmlLevel::XadesB));
    const auto path = dir.file("ns-" + std::to_string(n++) + ".xml");
    doc.save(path);
    for (const auto& sig : {teacher, seal}) {
      const auto [rc, out] = run(xmlsec_verify(path, sig));
      INFO(path << " " << sig << "\n" << out);
      CHECK(rc == 0);
    }
  }
}
