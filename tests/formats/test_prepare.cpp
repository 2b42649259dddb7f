// Two-phase signing (issue 14): the server prepares a transcript with only the signer's
// certificate chain, the digest is signed on the fixture token (the token layer, as the agent's
// hash item does), the server embeds the signature; openssl cms, xmlsec1 and pdfsig verify the
// result, and the same signature through the single call gives the same bytes. A changed state,
// a signature over another digest and another certificate are each refused with their own code.

#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_support.hpp"
#include "kyso/formats/prepare.hpp"
#include "two_phase.hpp"

using kyso::Bytes;
using kyso::ErrorCode;
using kyso::SignAlgorithm;
using namespace kyso::formats;
using namespace kyso::test;

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// What the server knows of the signer: the certificate chain the page sent, nothing else.
kyso::Credential server_view(kyso::Signer& signer) {
  std::vector<Bytes> chain{signer.credential().cert.der};
  for (const auto& c : signer.credential().chain) chain.push_back(c);
  return signer_from_chain(chain);
}

// 2026-11-23 09:00:00 UTC: one signing time for both ways of signing.
const auto kTime = std::chrono::system_clock::from_time_t(1795424400);

// The signature of the prepared digest, made on the token (ECDSA as DER, like a hash item).
Bytes sign_on_token(kyso::Signer& signer, const Prepared& p) {
  return signer.sign_digest(p.algorithm, p.digest, kyso::SignatureEncoding::Der);
}

ErrorCode code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const kyso::Error& e) {
    return e.code();
  }
  FAIL("no error thrown");
  return ErrorCode::Internal;
}

std::string openssl_cms_verify(const std::string& sig, const std::string& content) {
  return "openssl cms -verify -binary -inform DER -in " + sig +
         (content.empty() ? "" : " -content " + content) + " -CAfile " + pki_path("root") +
         " -purpose any -out /dev/null 2>&1";
}

std::string xmlsec_verify(const std::string& file, const std::string& sig_id) {
  return "xmlsec1 --verify --trusted-pem " + pki_path("root") + " --untrusted-pem " +
         pki_path("sub") + " --id-attr:Id HocBa --id-attr:Id DuLieuHocBa --node-xpath \"//*[@Id='" +
         sig_id + "']\" " + file + " 2>&1";
}

std::string lxml_check(const std::string& file, const std::string& sig_id) {
  return std::string("/usr/bin/python3 ") + KYSO_FORMATS_TEST_SRC + "/xmldsig_check.py " + file +
         " " + sig_id + " " + pki_path("root") + " " + pki_path("sub") + " 2>&1";
}

XmlSignOptions xml_opts(SignAlgorithm alg, const std::string& id, XmlLevel level) {
  XmlSignOptions o;
  o.algorithm = alg;
  o.reference_id = id + "-dl";
  o.container = "ChuKyGVCN";
  o.signature_id = id + "-gvcn";
  o.level = level;
  o.time = kTime;
  return o;
}

PdfSignOptions pdf_opts(SignAlgorithm alg) {
  PdfSignOptions o;
  o.algorithm = alg;
  o.reason = "Phê duyệt học bạ";
  o.location = "Hà Nội";
  o.time = kTime;
  return o;
}

// The three refusals, on any format's prepared state: a changed byte (anywhere: the document,
// the digest, the MAC), another server's key and an unknown version; a signature over another
// digest and one by another key; a certificate other than the one prepared for.
void check_refusals(const Prepared& p, kyso::Signer& signer, const StateKey& key) {
  const Bytes good = sign_on_token(signer, p);
  const Bytes cert = signer.credential().cert.der;
  // In the certificate too: the MAC's keyed context after a signer's certificate is reused.
  const std::size_t in_cert = 14 + 4 + kyso::to_string(p.algorithm).size() + 4 + 10;
  for (const std::size_t at : {std::size_t{20}, in_cert, p.state.size() / 2, p.state.size() - 1}) {
    Bytes changed = p.state;
    changed[at] ^= 0x01U;
    INFO("byte " << at);
    CHECK(code_of([&] { embed(changed, good, key); }) == ErrorCode::PreparedStateInvalid);
  }
  if (p.format == PreparedFormat::Pdf) {
    // The PDF is checked by its byte ranges, not the MAC: /Contents must still be zeros too.
    const std::string text(p.state.begin(), p.state.end());
    const auto lt = text.find("/Contents <0000");
    REQUIRE(lt != std::string::npos);
    for (const std::size_t at : {lt + 20, lt - 10, text.find("%%EOF") - 2}) {
      Bytes changed = p.state;
      changed[at] = changed[at] == '1' ? '2' : '1';
      INFO("PDF byte " << at);
      CHECK(code_of([&] { embed(changed, good, key); }) == ErrorCode::PreparedStateInvalid);
    }
  }
  Bytes v2 = p.state;
  v2[8] = 2;  // the version byte
  CHECK(code_of([&] { embed(v2, good, key); }) == ErrorCode::PreparedStateInvalid);
  CHECK(code_of([&] { embed(p.state, good, StateKey::generate()); }) ==
        ErrorCode::PreparedStateInvalid);
  CHECK(code_of([&] { embed(Bytes(p.state.begin(), p.state.begin() + 40), good, key); }) ==
        ErrorCode::PreparedStateInvalid);

  Bytes other_digest = p.digest;
  other_digest[0] ^= 0xFFU;
  const Bytes over_other = signer.sign_digest(p.algorithm, other_digest);
  CHECK(code_of([&] { embed(p.state, over_other, key); }) == ErrorCode::SignatureMismatch);
  Bytes garbage = good;
  garbage[garbage.size() / 2] ^= 0x10U;
  CHECK(code_of([&] { embed(p.state, garbage, key); }) == ErrorCode::SignatureMismatch);

  auto principal = demo_signer(signer.credential().cert.key_type == "EC" ? "teacher" : "principal");
  EmbedOptions other_cert;
  other_cert.signer_certificate = principal->credential().cert.der;
  CHECK(code_of([&] { embed(p.state, good, key, other_cert); }) == ErrorCode::CertificateMismatch);
  if (signer.credential().cert.key_type != "EC") {
    // The right digest signed by another key: the certificate claimed matches, the key does not.
    const Bytes by_other = principal->sign_digest(p.algorithm, p.digest);
    CHECK(code_of([&] { embed(p.state, by_other, key); }) == ErrorCode::SignatureMismatch);
  }

  EmbedOptions right_cert;
  right_cert.signer_certificate = cert;
  CHECK_FALSE(embed(p.state, good, key, right_cert).document.empty());
}

const std::string kPackage =
    R"({"loai":"HocBaSo","lop":"10A1","hocSinh":{"hoTen":"Nguyễn Thị Ánh"},"ketQua":"Lên lớp"})";

}  // namespace

TEST_CASE("prepare: CAdES prepared on the server, signed on the token, embedded, verifies",
          "[cms][twophase]") {
  ScratchDir dir;
  write_text(dir.file("goi.json"), kPackage);
  const StateKey key = StateKey::generate();
  const std::vector<std::pair<std::string, SignAlgorithm>> cases{
      {"teacher", SignAlgorithm::RsaPkcs1Sha256},
      {"principal", SignAlgorithm::RsaPssSha256},
      {"teacher-ec", SignAlgorithm::EcdsaSha256}};
  for (const auto& [name, alg] : cases) {
    for (const bool detached : {true, false}) {
      INFO(name << (detached ? " detached" : " attached"));
      auto signer = demo_signer(name);
      CmsOptions o;
      o.algorithm = alg;
      o.detached = detached;
      o.time = kTime;
      const Prepared p = prepare_cms(bytes_of(kPackage), server_view(*signer), o, key);
      CHECK(p.format == PreparedFormat::Cms);
      CHECK(p.digest.size() == 32);
      const Embedded e = embed(p.state, sign_on_token(*signer, p), key);
      const auto path = dir.file(name + ".p7s");
      write_bytes(path, e.document);
      const auto [rc, out] = run(openssl_cms_verify(path, detached ? dir.file("goi.json") : ""));
      INFO(out);
      CHECK(rc == 0);
      if (alg == SignAlgorithm::RsaPkcs1Sha256) {
        // PKCS#1 v1.5 is deterministic: the single call makes exactly these bytes.
        CHECK(e.document == sign_cms(*signer, bytes_of(kPackage), o));
      }
    }
  }
}

// A self-signed P-256 certificate of its own key, as a server sees a signer it never met.
Bytes stranger_certificate(int i) {
  kyso::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  kyso::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1000 + i);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn = "Giáo viên " + std::to_string(i);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key.get());
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  return kyso::formats::detail::i2d_bytes(cert.get(), i2d_X509);
}

TEST_CASE(
    "prepare: CAdES for more signers than a process keeps parsed, then the token's signer "
    "still embeds and verifies",
    "[cms][twophase]") {
  // Found reading cms.cpp (issue 14): the per-process cache of parsed signers was cleared when
  // it passed 64 entries after the new entry's slot had been taken, and the new signer was
  // written into the freed slot (a heap use after free under ASan on the 65th signer).
  ScratchDir dir;
  write_text(dir.file("goi.json"), kPackage);
  const StateKey key = StateKey::generate();
  CmsOptions o;
  o.algorithm = SignAlgorithm::EcdsaSha256;
  o.time = kTime;
  const Bytes content_digest = kyso::sha256(bytes_of(kPackage));
  for (int i = 0; i < 70; ++i) {
    INFO("signer " << i);
    const std::vector<Bytes> chain{stranger_certificate(i)};
    const kyso::Credential stranger = signer_from_chain(chain);
    const Prepared p = prepare_cms_digest(content_digest, stranger, o, key);
    CHECK(p.digest.size() == 32);
    CHECK(inspect_prepared(p.state, key).certificate == stranger.cert.der);
  }
  auto signer = demo_signer("teacher-ec");
  const Prepared p = prepare_cms(bytes_of(kPackage), server_view(*signer), o, key);
  write_bytes(dir.file("goi.p7s"), embed(p.state, sign_on_token(*signer, p), key).document);
  const auto [rc, out] = run(openssl_cms_verify(dir.file("goi.p7s"), dir.file("goi.json")));
  INFO(out);
  CHECK(rc == 0);
}

TEST_CASE("prepare: XML-DSig and XAdES prepared, signed on the token, embedded, verify",
          "[xades][twophase]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const std::string xml = transcript_xml(t);
  const StateKey key = StateKey::generate();
  const std::vector<std::tuple<std::string, SignAlgorithm, XmlLevel>> cases{
      {"teacher", SignAlgorithm::RsaPkcs1Sha256, XmlLevel::Dsig},
      {"teacher", SignAlgorithm::RsaPkcs1Sha256, XmlLevel::XadesB},
      {"principal", SignAlgorithm::RsaPssSha256, XmlLevel::Dsig},
      {"teacher-ec", SignAlgorithm::EcdsaSha256, XmlLevel::Dsig}};
  int n = 0;
  for (const auto& [name, alg, level] : cases) {
    INFO(name << " level " << static_cast<int>(level));
    auto signer = demo_signer(name);
    const XmlSignOptions o = xml_opts(alg, t.id, level);
    const Prepared p = prepare_xml(bytes_of(xml), server_view(*signer), o, key);
    CHECK(p.format == PreparedFormat::Xml);
    const Embedded e = embed(p.state, sign_on_token(*signer, p), key);
    CHECK(e.id == o.signature_id);
    const auto path = dir.file("hb-" + std::to_string(++n) + ".xml");
    write_bytes(path, e.document);
    // xmlsec1 has no RSA-PSS, the lxml checker no ECDSA.
    const auto [rc, out] =
        run(kyso::is_pss(alg) ? lxml_check(path, e.id) : xmlsec_verify(path, e.id));
    INFO(out);
    CHECK(rc == 0);
    if (alg == SignAlgorithm::RsaPkcs1Sha256) {
      CHECK(e.document == sign_xml(*signer, bytes_of(xml), o));
    }
  }
}

TEST_CASE("prepare: PAdES prepared, signed on the token, embedded, verifies in pdfsig",
          "[pades][twophase]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const StateKey key = StateKey::generate();
  for (const bool xref_stream : {false, true}) {
    const Bytes pdf = transcript_pdf(t, xref_stream);
    for (const auto& [name, alg] : std::vector<std::pair<std::string, SignAlgorithm>>{
             {"teacher", SignAlgorithm::RsaPkcs1Sha256},
             {"principal", SignAlgorithm::RsaPssSha256},
             {"teacher-ec", SignAlgorithm::EcdsaSha256}}) {
      INFO(name << (xref_stream ? " xref stream" : " xref table"));
      auto signer = demo_signer(name);
      PdfSignOptions o = pdf_opts(alg);
      o.visible = PdfVisibleSignature{};
      o.visible->role = "Giáo viên chủ nhiệm";
      const Prepared p = prepare_pdf(pdf, server_view(*signer), o, key);
      CHECK(p.format == PreparedFormat::Pdf);
      const Embedded e = embed(p.state, sign_on_token(*signer, p), key);
      CHECK(e.id == "Signature1");
      const auto path = dir.file(name + (xref_stream ? "-xs" : "") + ".pdf");
      write_bytes(path, e.document);
      const auto [rc, out] = run("pdfsig " + path + " 2>&1");
      INFO(out);
      CHECK(out.find("Signature Validation: Signature is Valid") != std::string::npos);
      CHECK(run("qpdf --check " + path + " >/dev/null 2>&1").first == 0);
      if (alg == SignAlgorithm::RsaPkcs1Sha256) {
        CHECK(e.document == sign_pdf(*signer, pdf, o));
      }
    }
  }
}

TEST_CASE(
    "prepare: a PAdES CMS filled in from its template is the CMS OpenSSL encodes, at every "
    "length of the signature",
    "[pades][twophase]") {
  // embed() fills the signer's template (two_phase.hpp) instead of building the CMS again: the
  // bytes must be cms_embed()'s for any signature, including lengths whose DER length fields
  // take another byte at some level (128, 256, 65,536).
  for (const auto& [name, alg] : std::vector<std::pair<std::string, SignAlgorithm>>{
           {"teacher", SignAlgorithm::RsaPkcs1Sha256},
           {"principal", SignAlgorithm::RsaPssSha384},
           {"teacher-ec", SignAlgorithm::EcdsaSha256}}) {
    INFO(name);
    auto signer = demo_signer(name);
    const kyso::Credential cred = server_view(*signer);
    for (const bool chain : {true, false}) {
      CmsOptions o;
      o.algorithm = alg;
      o.signing_time = false;
      o.include_chain = chain;
      const detail::CmsTemplate t = detail::cms_template(cred, o);
      for (const std::size_t size :
           {1U, 70U, 71U, 72U, 127U, 128U, 255U, 256U, 384U, 512U, 3000U, 65000U, 70000U}) {
        INFO("signature of " << size << " bytes, chain " << chain);
        const Bytes content_digest =
            kyso::digest(kyso::openssl_md_name(kyso::hash_of(alg)), bytes_of(std::to_string(size)));
        Bytes sig(size);
        for (std::size_t i = 0; i < size; ++i) sig[i] = static_cast<std::uint8_t>(i * 7 + size);
        detail::CmsPending p = detail::cms_prepare(cred, content_digest, std::nullopt, o);
        CHECK(detail::cms_template_tbs(t, content_digest) == p.tbs);
        CHECK(detail::cms_template_fill(t, content_digest, sig) ==
              detail::cms_embed(p, sig, std::nullopt));
      }
    }
  }
}

TEST_CASE(
    "prepare: a changed state, a signature over another digest and another certificate "
    "are each refused with their own code",
    "[twophase][security]") {
  const auto t = sample_class(1).at(0);
  const StateKey key = StateKey::generate();
  for (const std::string name : {"teacher", "teacher-ec"}) {
    INFO(name);
    auto signer = demo_signer(name);
    const auto alg = name == "teacher" ? SignAlgorithm::RsaPkcs1Sha256 : SignAlgorithm::EcdsaSha256;
    CmsOptions co;
    co.algorithm = alg;
    check_refusals(prepare_cms(bytes_of(kPackage), server_view(*signer), co, key), *signer, key);
    check_refusals(prepare_xml(bytes_of(transcript_xml(t)), server_view(*signer),
                               xml_opts(alg, t.id, XmlLevel::XadesB), key),
                   *signer, key);
    check_refusals(prepare_pdf(transcript_pdf(t), server_view(*signer), pdf_opts(alg), key),
                   *signer, key);
  }
}

TEST_CASE("prepare: B-T states get their timestamp at embedding, and need a TSA there",
          "[twophase][tsa]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  TsaConfig tc;
  tc.url = tsa.url();
  tc.trusted_pem = {pki_path("root")};
  const StateKey key = StateKey::generate();
  auto signer = demo_signer("teacher");
  const auto t = sample_class(1).at(0);
  PdfSignOptions o = pdf_opts(SignAlgorithm::RsaPkcs1Sha256);
  o.tsa = tc;
  const Prepared p = prepare_pdf(transcript_pdf(t), server_view(*signer), o, key);
  CHECK(tsa.requests() == 0);
  const Bytes sig = sign_on_token(*signer, p);
  CHECK(code_of([&] { embed(p.state, sig, key); }) == ErrorCode::TsaNotConfigured);
  EmbedOptions eo;
  eo.tsa = tc;
  const Embedded e = embed(p.state, sig, key, eo);
  CHECK(tsa.requests() == 1);
  write_bytes(dir.file("bt.pdf"), e.document);
  const auto [rc, out] = run("pdfsig " + dir.file("bt.pdf") + " 2>&1");
  INFO(out);
  CHECK(out.find("Signature Validation: Signature is Valid") != std::string::npos);
  const auto [drc, dump] = run("cd " + dir.path().string() +
                               " && pdfsig -dump bt.pdf >/dev/null 2>&1 && "
                               "openssl cms -cmsout -print -inform DER -in bt.pdf.sig0");
  CHECK(dump.find("id-smime-aa-timeStampToken") != std::string::npos);
}

TEST_CASE(
    "prepare: kyso prepare a folder, the token signs the digests, kyso embed writes "
    "verified documents and names a refused one",
    "[twophase][cli]") {
  ScratchDir dir;
  (void)kyso::test::fixture();  // KYSO_CLI for the child process
  const std::string cli = std::getenv("KYSO_CLI");
  auto signer = demo_signer("teacher");
  const auto cls = sample_class(3);
  std::filesystem::create_directories(dir.file("lop"));
  for (const auto& t : cls) {
    write_bytes(dir.file("lop/" + t.id + ".pdf"), transcript_pdf(t));
    write_text(dir.file("lop/" + t.id + ".xml"), transcript_xml(t));
  }
  write_bytes(dir.file("gvcn.der"), signer->credential().cert.der);
  std::string certs = " --cert " + dir.file("gvcn.der");
  for (std::size_t i = 0; i < signer->credential().chain.size(); ++i) {
    const auto f = dir.file("ca" + std::to_string(i) + ".der");
    write_bytes(f, signer->credential().chain[i]);
    certs += " --cert " + f;
  }
  const std::string key = dir.file("state.key");
  const auto [prc, pout] =
      run(cli + " prepare " + dir.file("lop") + certs + " --state-key " + key + " --states " +
          dir.file("states") + " --element DuLieuHocBa --container ChuKyGVCN" +
          " --reason 'Phê duyệt học bạ' -o " + dir.file("digests.json") + " 2>&1");
  INFO(pout);
  REQUIRE(prc == 0);
  CHECK((std::filesystem::status(key).permissions() & std::filesystem::perms::others_read) ==
        std::filesystem::perms::none);
  const Bytes dj = read_bytes(dir.file("digests.json"));
  const auto digests = nlohmann::json::parse(dj.begin(), dj.end());
  REQUIRE(digests["items"].size() == 6);

  // The page's part: the agent signs each item's hash (here the token layer directly) and the
  // summary goes back as batch.sign answers it.
  nlohmann::json results = nlohmann::json::array();
  int index = 0;
  for (const auto& item : digests["items"]) {
    const Bytes h = kyso::from_base64(item["item"]["hash"].get<std::string>());
    results.push_back(
        {{"index", index++},
         {"ok", true},
         {"signature", kyso::to_base64(signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, h))}});
  }
  const nlohmann::json summary{
      {"result",
       {{"certificate", kyso::to_base64(signer->credential().cert.der)}, {"results", results}}}};
  write_text(dir.file("signatures.json"), summary.dump());
  // One state changed on the server's disk: that document is refused, the others are written.
  const std::string changed = digests["items"][1]["state"].get<std::string>();
  flip_byte(changed, -100);
  const auto [erc, eout] =
      run(cli + " --lang en embed --json --prepared " + dir.file("digests.json") +
          " --signatures " + dir.file("signatures.json") + " --state-key " + key + " --out " +
          dir.file("signed") + " 2>/dev/null");
  INFO(eout);
  CHECK(erc == 2);
  const auto report = nlohmann::json::parse(eout);
  CHECK(report["embedded"] == 5);
  CHECK(report["failed"] == 1);
  CHECK(report["files"][1]["error"]["code"] == "PREPARED_STATE_INVALID");
  for (const auto& f : report["files"]) {
    if (!f["ok"].get<bool>()) continue;
    const std::string out = f["output"];
    INFO(out);
    if (out.ends_with(".pdf")) {
      const auto [rc, text] = run("pdfsig " + out + " 2>&1");
      CHECK(text.find("Signature Validation: Signature is Valid") != std::string::npos);
    } else {
      CHECK(run(xmlsec_verify(out, f["id"].get<std::string>())).first == 0);
    }
  }
}
