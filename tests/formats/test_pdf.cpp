// PAdES B-B / B-T by incremental update: teacher -> principal -> seal on the fixture token, each
// revision checked by pdfsig (poppler) and qpdf --check; earlier bytes stay untouched.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <regex>

#include "format_support.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/verify.hpp"
#include "pdf_facts.hpp"

using kyso::SignAlgorithm;
using kyso::formats::PdfSignOptions;
using namespace kyso::test;

namespace {

PdfSignOptions opts(SignAlgorithm alg, std::string reason = {}) {
  PdfSignOptions o;
  o.algorithm = alg;
  o.reason = std::move(reason);
  o.location = "Hà Nội";
  return o;
}

// Number of signatures pdfsig calls valid, or -1 when pdfsig fails outright.
int pdfsig_valid(const std::string& path, std::string* output = nullptr) {
  const auto [rc, out] = run("pdfsig " + path + " 2>&1");
  if (output != nullptr) *output = out;
  int valid = 0;
  for (std::size_t p = 0;
       (p = out.find("Signature Validation: Signature is Valid", p)) != std::string::npos; ++p)
    ++valid;
  return rc == 0 || valid > 0 ? valid : -1;
}

bool qpdf_check(const std::string& path) {
  return run("qpdf --check " + path + " >/dev/null 2>&1").first == 0;
}

bool starts_with_file(const std::string& path, const std::string& prefix_path) {
  const auto a = read_bytes(path);
  const auto b = read_bytes(prefix_path);
  return a.size() > b.size() && std::equal(b.begin(), b.end(), a.begin());
}

// teacher (PKCS#1 v1.5), principal (RSA-PSS), seal (PKCS#1 v1.5), each a new revision.
void sign_three(const std::string& dir, const std::string& in, const std::string& out) {
  const std::string r1 = dir + "/r1.pdf";
  const std::string r2 = dir + "/r2.pdf";
  kyso::formats::sign_pdf(*demo_signer("teacher"), in, r1,
                          opts(SignAlgorithm::RsaPkcs1Sha256, "Giáo viên chủ nhiệm ký học bạ"));
  kyso::formats::sign_pdf(*demo_signer("principal"), r1, r2,
                          opts(SignAlgorithm::RsaPssSha256, "Hiệu trưởng phê duyệt"));
  kyso::formats::sign_pdf(*demo_signer("seal"), r2, out,
                          opts(SignAlgorithm::RsaPkcs1Sha256, "Đóng dấu phát hành"));
  CHECK(starts_with_file(r1, in));
  CHECK(starts_with_file(r2, r1));
  CHECK(starts_with_file(out, r2));
}

}  // namespace

TEST_CASE("pdf: 40 transcripts signed teacher, principal, seal verify in pdfsig and qpdf",
          "[pades]") {
  ScratchDir dir;
  std::vector<std::string> checks;
  for (const auto& t : sample_class(40)) {
    const auto in = dir.file(t.id + ".pdf");
    write_bytes(in, transcript_pdf(t));
    const auto out = dir.file(t.id + "-signed.pdf");
    sign_three(dir.path().string(), in, out);
    // All three valid, the last one covering the whole file.
    checks.push_back("test $(pdfsig " + out + " 2>&1 | grep -c 'Signature is Valid') = 3");
    checks.push_back("pdfsig " + out + " 2>&1 | grep -q 'Total document signed'");
    checks.push_back("qpdf --check " + out);
  }
  const auto failed = run_all(checks);
  for (auto i : failed) INFO(checks[i] << "\n" << run(checks[i]).second);
  CHECK(failed.empty());
  std::string out;
  CHECK(pdfsig_valid(dir.file("hb-01-signed.pdf"), &out) == 3);
  INFO(out);
  CHECK(out.find("Trần Văn Bình") != std::string::npos);
  CHECK(out.find("ETSI.CAdES.detached") != std::string::npos);
}

TEST_CASE("pdf: a file with a cross-reference stream gets stream updates and stays valid",
          "[pades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  write_bytes(dir.file("in.pdf"), transcript_pdf(t, true));
  REQUIRE(qpdf_check(dir.file("in.pdf")));
  sign_three(dir.path().string(), dir.file("in.pdf"), dir.file("out.pdf"));
  std::string out;
  CHECK(pdfsig_valid(dir.file("out.pdf"), &out) == 3);
  INFO(out);
  CHECK(qpdf_check(dir.file("out.pdf")));
  // The comparison of revisions follows cross-reference streams too.
  kyso::formats::VerifyOptions vo;
  vo.anchors = {pki_path("root")};
  vo.check_revocation = false;
  const auto report = kyso::formats::verify_file(dir.file("out.pdf"), vo);
  REQUIRE(report.signatures.size() == 3);
  CHECK(report.ok());
  CHECK(report.signatures[0].later_changes->kind ==
        kyso::formats::PdfLaterChanges::Kind::SignaturesOrFormFields);
  CHECK(report.signatures[1].later_changes->signatures_added == 1);
}

TEST_CASE("pdf: one changed byte makes pdfsig report the signatures invalid", "[pades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  write_bytes(dir.file("in.pdf"), transcript_pdf(t));
  sign_three(dir.path().string(), dir.file("in.pdf"), dir.file("out.pdf"));
  REQUIRE(pdfsig_valid(dir.file("out.pdf")) == 3);
  // A byte of the page content ("Ho va ten" line) inside every signature's byte range.
  const auto bytes = read_bytes(dir.file("out.pdf"));
  const auto pos = std::string(bytes.begin(), bytes.end()).find("Ho va ten");
  REQUIRE(pos != std::string::npos);
  flip_byte(dir.file("out.pdf"), static_cast<long>(pos));
  std::string out;
  CHECK(pdfsig_valid(dir.file("out.pdf"), &out) == 0);
  INFO(out);
}

TEST_CASE("pdf: B-T signature carries a timestamp token from the TSA", "[pades][tsa]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  const auto t = sample_class(1).at(0);
  write_bytes(dir.file("in.pdf"), transcript_pdf(t));
  auto o = opts(SignAlgorithm::RsaPssSha256);
  o.tsa = kyso::formats::TsaConfig{};
  o.tsa->url = tsa.url();
  o.tsa->trusted_pem = {pki_path("root")};
  kyso::formats::sign_pdf(*demo_signer("seal"), dir.file("in.pdf"), dir.file("out.pdf"), o);
  CHECK(tsa.requests() == 1);
  CHECK(pdfsig_valid(dir.file("out.pdf")) == 1);
  const auto [rc, out] = run("cd " + dir.path().string() +
                             " && pdfsig -dump out.pdf >/dev/null 2>&1 && "
                             "openssl cms -cmsout -print -inform DER -in out.pdf.sig0");
  CHECK(out.find("id-smime-aa-timeStampToken") != std::string::npos);
  // PAdES: no signingTime among the signer's signed attributes (the time is the PDF's /M);
  // the timestamp token's own attributes, printed after unsignedAttrs, may have one.
  CHECK(out.substr(0, out.find("unsignedAttrs")).find("signingTime") == std::string::npos);
  CHECK(out.find("id-smime-aa-signingCertificateV2") != std::string::npos);
}

TEST_CASE("pdf: broken, encrypted and non-PDF files are refused with no output", "[pades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const auto good = transcript_pdf(t);
  auto signer = demo_signer("teacher");
  auto expect = [&](const std::string& in, kyso::ErrorCode code) {
    const auto out = dir.file("out.pdf");
    try {
      kyso::formats::sign_pdf(*signer, in, out, opts(SignAlgorithm::RsaPkcs1Sha256));
      FAIL("signed " << in);
    } catch (const kyso::Error& e) {
      INFO(in << ": " << e.detail());
      CHECK(e.code() == code);
    }
    CHECK_FALSE(std::filesystem::exists(out));
    CHECK_FALSE(std::filesystem::exists(out + ".kyso-tmp"));
  };
  // Broken xref: every offset in the table shifted.
  std::string broken(good.begin(), good.end());
  broken =
      std::regex_replace(broken, std::regex("0000000(\\d\\d\\d) 00000 n"), "0000000$1 00000 x");
  write_text(dir.file("broken.pdf"), broken);
  expect(dir.file("broken.pdf"), kyso::ErrorCode::DocumentInvalid);
  // startxref pointing nowhere.
  std::string bad_start(good.begin(), good.end());
  const auto sx = bad_start.rfind("startxref\n") + 10;
  bad_start.replace(sx, bad_start.find('\n', sx) - sx, "17");
  write_text(dir.file("badstart.pdf"), bad_start);
  expect(dir.file("badstart.pdf"), kyso::ErrorCode::DocumentInvalid);
  // Encrypted, with and without a user password.
  write_bytes(dir.file("plain.pdf"), good);
  REQUIRE(
      run("qpdf --encrypt secret owner 256 -- " + dir.file("plain.pdf") + " " + dir.file("enc.pdf"))
          .first == 0);
  expect(dir.file("enc.pdf"), kyso::ErrorCode::DocumentEncrypted);
  REQUIRE(
      run("qpdf --encrypt '' owner 256 -- " + dir.file("plain.pdf") + " " + dir.file("enc0.pdf"))
          .first == 0);
  expect(dir.file("enc0.pdf"), kyso::ErrorCode::DocumentEncrypted);
  // Not a PDF at all.
  write_text(dir.file("hocba.pdf"), "Họ và tên: Nguyễn Văn An\nĐây không phải PDF.\n");
  expect(dir.file("hocba.pdf"), kyso::ErrorCode::DocumentInvalid);
}

TEST_CASE("pdf: a file signed onto itself or onto a link to it is refused and left as it was",
          "[pades]") {
  // sign_pdf compares the output with the input it opened (device and inode from the fstat
  // that read it), so a second name for the same file is the same file.
  ScratchDir dir;
  const auto good = transcript_pdf(sample_class(1).at(0));
  const auto in = dir.file("hb.pdf");
  write_bytes(in, good);
  std::filesystem::create_hard_link(in, dir.file("hb-link.pdf"));
  std::filesystem::create_symlink(in, dir.file("hb-sym.pdf"));
  auto signer = demo_signer("teacher");
  for (const auto& out : {in, dir.file("hb-link.pdf"), dir.file("hb-sym.pdf")}) {
    INFO(out);
    try {
      kyso::formats::sign_pdf(*signer, in, out, opts(SignAlgorithm::RsaPkcs1Sha256));
      FAIL("signed onto " << out);
    } catch (const kyso::Error& e) {
      CHECK(e.code() == kyso::ErrorCode::BadRequest);
    }
    CHECK(read_bytes(in) == good);
    CHECK_FALSE(std::filesystem::exists(out + ".kyso-tmp"));
  }
  kyso::formats::sign_pdf(*signer, in, dir.file("signed.pdf"), opts(SignAlgorithm::RsaPkcs1Sha256));
  CHECK(pdfsig_valid(dir.file("signed.pdf")) == 1);
}

namespace {

// Dark pixels in a region of page 1 rendered by pdftoppm at 72 dpi (PDF points = pixels), the
// region given in PDF coordinates (origin bottom-left); -1 when rendering fails.
int dark_pixels(const std::string& pdf, double x, double y, double w, double h,
                double page_height = 842) {
  const std::string prefix = pdf + ".render";
  const auto [rc, out] =
      run("pdftoppm -r 72 -gray -f 1 -l 1 -singlefile -x " + std::to_string(static_cast<int>(x)) +
          " -y " + std::to_string(static_cast<int>(page_height - y - h)) + " -W " +
          std::to_string(static_cast<int>(w)) + " -H " + std::to_string(static_cast<int>(h)) + " " +
          pdf + " " + prefix + " 2>&1");
  if (rc != 0) return -1;
  const auto pgm = read_bytes(prefix + ".pgm");
  // P5 header: magic, width, height, maxval, each followed by whitespace.
  std::size_t pos = 0;
  for (int fields = 0; fields < 4 && pos < pgm.size(); ++fields) {
    while (pos < pgm.size() && std::isspace(pgm[pos]) == 0) ++pos;
    ++pos;
  }
  int dark = 0;
  for (; pos < pgm.size(); ++pos) dark += pgm[pos] < 128 ? 1 : 0;
  return dark;
}

}  // namespace

TEST_CASE("pdf: three visible signature boxes in Vietnamese verify, extract exactly and render",
          "[pades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  write_bytes(dir.file("in.pdf"), transcript_pdf(t));
  struct Box {
    const char* who;
    const char* role;  // empty: guessed from the certificate
    double x, y;
    SignAlgorithm alg;
  };
  const Box boxes[] = {{"teacher", "Giáo viên chủ nhiệm", 40, 60, SignAlgorithm::RsaPkcs1Sha256},
                       {"principal", "Hiệu trưởng", 300, 60, SignAlgorithm::RsaPssSha256},
                       {"seal", "", 300, 140, SignAlgorithm::RsaPkcs1Sha256}};
  std::string in = dir.file("in.pdf");
  for (int i = 0; i < 3; ++i) {
    auto o = opts(boxes[i].alg);
    o.visible = kyso::formats::PdfVisibleSignature{};
    o.visible->x = boxes[i].x;
    o.visible->y = boxes[i].y;
    o.visible->role = boxes[i].role;
    const auto out = dir.file("v" + std::to_string(i + 1) + ".pdf");
    kyso::formats::sign_pdf(*demo_signer(boxes[i].who), in, out, o);
    CHECK(starts_with_file(out, in));
    in = out;
  }
  const auto out = dir.file("v3.pdf");
  std::string sig;
  CHECK(pdfsig_valid(out, &sig) == 3);
  INFO(sig);
  CHECK(qpdf_check(out));
  CHECK(run("qpdf --check " + dir.file("v1.pdf") + " >/dev/null 2>&1").first == 0);

  // The boxes' text comes back exactly, diacritics included, through the ToUnicode maps.
  const auto [rc, text] = run("pdftotext -enc UTF-8 " + out + " -");
  INFO(text);
  REQUIRE(rc == 0);
  for (const char* s :
       {"Ký bởi: Nguyễn Thị Ánh", "Vai trò: Giáo viên chủ nhiệm", "Ký bởi: Trần Văn Bình",
        "Vai trò: Hiệu trưởng", "Ký bởi: Trường THPT Chu Văn An", "Vai trò: Con dấu nhà trường",
        "Thời gian ký: "}) {
    CHECK(text.find(s) != std::string::npos);
  }
  // Each box renders (text and border drawn), the page around them stays blank.
  const kyso::formats::PdfVisibleSignature defaults;
  for (const auto& b : boxes) {
    CHECK(dark_pixels(out, b.x, b.y, defaults.width, defaults.height) > 300);
  }
  CHECK(dark_pixels(out, 40, 300, 200, 60) == 0);
  // The font is embedded as a subset (Type0 / CIDFontType2, Identity-H, ToUnicode).
  const auto [rc2, fonts] = run("pdffonts " + out);
  INFO(fonts);
  CHECK(fonts.find("CID TrueType") != std::string::npos);
  CHECK(fonts.find("Identity-H") != std::string::npos);
  CHECK(fonts.find("DejaVuSans") != std::string::npos);
  // Kyso's own verifier: every signature valid, the later boxes seen as added signatures only.
  kyso::formats::VerifyOptions vo;
  vo.anchors = {pki_path("root")};
  vo.check_revocation = false;
  const auto report = kyso::formats::verify_file(out, vo);
  REQUIRE(report.signatures.size() == 3);
  CHECK(report.ok());
  using Kind = kyso::formats::PdfLaterChanges::Kind;
  CHECK(report.signatures[0].later_changes->kind == Kind::SignaturesOrFormFields);
  CHECK(report.signatures[0].later_changes->signatures_added == 2);
  CHECK(report.signatures[2].later_changes->kind == Kind::None);
}

TEST_CASE("pdf: a visible box on a missing page or with a glyph the font lacks is refused",
          "[pades]") {
  ScratchDir dir;
  write_bytes(dir.file("in.pdf"), transcript_pdf(sample_class(1).at(0)));
  auto o = opts(SignAlgorithm::RsaPkcs1Sha256);
  o.visible = kyso::formats::PdfVisibleSignature{};
  o.visible->page = 3;
  try {
    kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("out.pdf"), o);
    FAIL("signed on page 3 of a one-page PDF");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::BadRequest);
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("out.pdf")));
  // A character the font has no glyph for is refused, not drawn as a blank.
  o.visible->page = 1;
  o.visible->name = "Nguyễn 漢字";
  try {
    kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("out.pdf"), o);
    FAIL("signed with a glyph the font lacks");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::BadRequest);
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("out.pdf")));
  o.visible->name.clear();
  // Page 0 is the last page.
  o.visible->page = 0;
  kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("out.pdf"), o);
  CHECK(pdfsig_valid(dir.file("out.pdf")) == 1);
}

TEST_CASE("pdf: plain files are read without qpdf, the others (comments, streams, damage) by qpdf",
          "[pades]") {
  using kyso::formats::detail::inspect_pdf;
  using kyso::formats::detail::read_plain_pdf;
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const auto bytes = transcript_pdf(t);
  const auto read = [](const std::string& path) {
    const auto b = read_bytes(path);
    const std::string_view v(reinterpret_cast<const char*>(b.data()), b.size());
    return read_plain_pdf(v, inspect_pdf(v, path));
  };
  write_bytes(dir.file("in.pdf"), bytes);
  const auto in = read(dir.file("in.pdf"));
  REQUIRE(in.has_value());
  CHECK(in->size > 0);
  CHECK_FALSE(in->acro_form);
  CHECK(in->annots.empty());
  CHECK(in->field_names.empty());
  CHECK(std::ranges::any_of(
      in->page_dict, [](const auto& e) { return e.first == "/Type" && e.second == "/Page"; }));

  // Each signature's revision is read back: its field, widget and form; the next signature
  // takes the next name, and a name already used (UTF-16 in the file) is refused.
  auto o = opts(SignAlgorithm::RsaPkcs1Sha256);
  o.field_name = "Chữ ký GVCN";
  kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("r1.pdf"), o);
  const auto r1 = read(dir.file("r1.pdf"));
  REQUIRE(r1.has_value());
  CHECK(r1->field_names == std::set<std::string>{"Chữ ký GVCN"});
  CHECK(r1->acro_form);
  CHECK(r1->size == in->size + 2);
  CHECK(r1->annots == r1->fields);  // the one widget, on the page and in the form
  try {
    kyso::formats::sign_pdf(*demo_signer("principal"), dir.file("r1.pdf"), dir.file("x.pdf"), o);
    FAIL("a second field of the same name");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::BadRequest);
  }
  kyso::formats::sign_pdf(*demo_signer("principal"), dir.file("r1.pdf"), dir.file("r2.pdf"),
                          opts(SignAlgorithm::RsaPssSha256));
  const auto r2 = read(dir.file("r2.pdf"));
  REQUIRE(r2.has_value());
  CHECK(r2->field_names == std::set<std::string>{"Chữ ký GVCN", "Signature1"});
  CHECK(pdfsig_valid(dir.file("r2.pdf")) == 2);
  CHECK(qpdf_check(dir.file("r2.pdf")));

  // What the reader leaves to qpdf: a comment inside the catalog, a cross-reference stream, an
  // encrypted file, a broken table. The first signs through qpdf just the same.
  std::string commented(bytes.begin(), bytes.end());
  const auto catalog = commented.find(" /Type /Catalog");
  REQUIRE(catalog != std::string::npos);
  commented.replace(catalog, 15, "%\n/Type/Catalog");  // same length: the offsets hold
  write_text(dir.file("c.pdf"), commented);
  CHECK_FALSE(read(dir.file("c.pdf")).has_value());
  kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("c.pdf"), dir.file("c-signed.pdf"),
                          opts(SignAlgorithm::RsaPkcs1Sha256));
  CHECK(pdfsig_valid(dir.file("c-signed.pdf")) == 1);
  CHECK(qpdf_check(dir.file("c-signed.pdf")));
  write_bytes(dir.file("xs.pdf"), transcript_pdf(t, true));
  CHECK_FALSE(read(dir.file("xs.pdf")).has_value());
  REQUIRE(run("qpdf --encrypt '' owner 256 -- " + dir.file("in.pdf") + " " + dir.file("enc.pdf"))
              .first == 0);
  CHECK_FALSE(read(dir.file("enc.pdf")).has_value());
  std::string broken(bytes.begin(), bytes.end());
  broken =
      std::regex_replace(broken, std::regex("0000000(\\d\\d\\d) 00000 n"), "0000000$1 00000 x");
  write_text(dir.file("broken.pdf"), broken);
  CHECK_FALSE(read(dir.file("broken.pdf")).has_value());
}
