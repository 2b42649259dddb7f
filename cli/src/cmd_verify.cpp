// kyso verify FILE: every signature of an XML, PDF or CMS file, reported in Vietnamese (default)
// or English, or as JSON. Exits 2 when any signature fails (1 for errors, 0 when all are valid).

#include <filesystem>
#include <iostream>

#include "context.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/formats/verify.hpp"

namespace kyso::cli {
namespace {

struct VerifyArgs {
  std::string file;
  std::vector<std::string> trust;
  std::vector<std::string> intermediates;
  std::vector<std::string> crls;
  std::string content;
  std::string ocsp_url;
  bool no_revocation = false;
};

void print_status(const Context& ctx, const char* label_vi, const char* label_en,
                  formats::CheckStatus s, const std::string& detail) {
  std::cout << "  " << ctx.tr(label_vi, label_en) << ": ";
  switch (s) {
    case formats::CheckStatus::Ok:
      std::cout << ctx.tr("đạt", "ok");
      break;
    case formats::CheckStatus::Failed:
      std::cout << ctx.tr("KHÔNG ĐẠT", "FAILED");
      break;
    case formats::CheckStatus::Unknown:
      std::cout << ctx.tr("không xác định", "unknown");
      break;
  }
  if (!detail.empty()) std::cout << " (" << detail << ")";
  std::cout << '\n';
}

void print_long_term(const Context& ctx, const formats::LongTermReport& lt) {
  std::cout << "  " << ctx.tr("Mức chữ ký", "Level") << ": " << formats::to_string(lt.level);
  if (lt.offline) {
    std::cout << ctx.tr(" (kiểm tra ngoại tuyến, chỉ bằng dữ liệu trong tài liệu)",
                        " (validated offline, from the document's own data only)");
  }
  std::cout << '\n';
  if (!lt.problem.empty()) {
    std::cout << "  " << ctx.tr("Dữ liệu kiểm tra dài hạn", "Long-term validation data") << ": "
              << ctx.tr("KHÔNG ĐẠT", "FAILED") << " (" << lt.problem << ")\n";
  }
  if (lt.offline && lt.problem.empty() && lt.validated_at) {
    std::cout << "  " << ctx.tr("Hợp lệ tại thời điểm", "Valid as of") << ": "
              << to_iso8601(*lt.validated_at) << '\n';
    for (const auto& e : lt.evidence) std::cout << "    - " << e << '\n';
  }
  if (!lt.archive_timestamps.empty()) {
    std::cout << "  " << ctx.tr("Dấu thời gian lưu trữ", "Archive timestamps") << ":";
    for (const auto& t : lt.archive_timestamps) std::cout << ' ' << to_iso8601(t);
    std::cout << '\n';
  }
  if (lt.covered_until && lt.problem.empty()) {
    std::cout << "  " << ctx.tr("Dấu thời gian bảo đảm đến", "Timestamps cover it until") << ": "
              << to_iso8601(*lt.covered_until);
    if (*lt.covered_until < std::chrono::system_clock::now()) {
      std::cout << ctx.tr(" (đã qua: lẽ ra phải đóng dấu thời gian lưu trữ mới trước ngày này)",
                          " (passed: a new archive timestamp was due before then)");
    } else {
      std::cout << ctx.tr(" (đóng dấu lưu trữ mới trước ngày này: kyso extend --to lta)",
                          " (add a new archive timestamp before then: kyso extend --to lta)");
    }
    std::cout << '\n';
  }
}

void print_human(const Context& ctx, const formats::VerifyReport& rep) {
  const Language lang = ctx.language();
  std::cout << ctx.tr("Tệp: ", "File: ") << rep.file << "  [" << rep.kind << "]  "
            << rep.signatures.size() << ctx.tr(" chữ ký", " signature(s)") << '\n';
  int n = 0;
  for (const auto& s : rep.signatures) {
    std::cout << '\n'
              << ctx.tr("Chữ ký ", "Signature ") << ++n << ": " << s.id << "  (" << s.format
              << ")\n";
    if (s.signer) {
      const auto& c = *s.signer;
      std::cout << "  " << ctx.tr("Người ký", "Signer") << ": " << c.common_name;
      for (const auto& u : c.uids) std::cout << "  " << u.prefix << ":" << u.value;
      std::cout << "\n  " << ctx.tr("Loại", "Kind") << ": "
                << (c.kind == SubjectKind::Person         ? ctx.tr("cá nhân", "person")
                    : c.kind == SubjectKind::Organization ? ctx.tr("tổ chức", "organization")
                                                          : ctx.tr("không rõ", "unknown"));
      if (!c.title.empty()) std::cout << ", " << c.title;
      if (!c.organization.empty()) std::cout << ", " << c.organization;
      std::cout << "\n  " << ctx.tr("Vai trò (ước đoán)", "Role (guessed)") << ": "
                << (s.role ? std::string(role_label(*s.role, lang))
                           : std::string(ctx.tr("không rõ", "unknown")))
                << "\n  " << ctx.tr("Nơi cấp", "Issuer") << ": " << c.issuer_common_name << '\n';
    }
    std::cout << "  " << ctx.tr("Thời điểm ký", "Signing time") << ": "
              << (s.signing_time ? to_iso8601(*s.signing_time)
                                 : std::string(ctx.tr("không có", "none")))
              << "\n  " << ctx.tr("Dấu thời gian", "Timestamp") << ": "
              << (s.timestamp ? to_iso8601(*s.timestamp) : std::string(ctx.tr("không có", "none")))
              << '\n';
    std::cout << "  " << ctx.tr("Toàn vẹn", "Integrity") << ": "
              << (s.integrity ? ctx.tr("đạt", "ok")
                              : ctx.tr("KHÔNG ĐẠT: tài liệu hoặc chữ ký đã bị thay đổi",
                                       "FAILED: the document or signature was changed"));
    if (!s.integrity_detail.empty()) std::cout << " (" << s.integrity_detail << ")";
    std::cout << '\n';
    print_status(ctx, "Chuỗi chứng thư", "Certificate chain", s.chain, s.chain_detail);
    print_status(ctx, "Tình trạng thu hồi", "Revocation", s.revocation, s.revocation_detail);
    if (s.signing_certificate != formats::CheckStatus::Unknown) {
      print_status(ctx, "Ràng buộc chứng thư ký", "Signing certificate binding",
                   s.signing_certificate, s.signing_certificate_detail);
    }
    if (s.later_changes) {
      using Kind = formats::PdfLaterChanges::Kind;
      const auto& c = *s.later_changes;
      std::cout << "  " << ctx.tr("Sau khi ký", "After signing") << ": ";
      switch (c.kind) {
        case Kind::None:
          std::cout << ctx.tr("không có thay đổi (chữ ký bao trùm toàn bộ tệp)",
                              "no changes (the signature covers the whole file)");
          break;
        case Kind::SignaturesOrFormFields:
          std::cout << ctx.tr("chỉ thêm chữ ký hoặc trường biểu mẫu, nội dung không đổi",
                              "only signatures or form fields added, content unchanged")
                    << " (" << c.signatures_added << ctx.tr(" chữ ký", " signature(s)") << ", "
                    << c.form_fields_added
                    << ctx.tr(" trường biểu mẫu khác", " other form field(s)") << ")";
          break;
        case Kind::ContentChanged:
          std::cout << ctx.tr("NỘI DUNG ĐÃ BỊ THAY ĐỔI sau chữ ký này",
                              "CONTENT WAS CHANGED after this signature");
          if (!c.changed.empty()) {
            std::cout << " (";
            for (std::size_t i = 0; i < c.changed.size() && i < 8; ++i)
              std::cout << (i > 0 ? "; " : "") << c.changed[i];
            if (c.changed.size() > 8) std::cout << "; …";
            std::cout << ")";
          }
          break;
      }
      std::cout << '\n';
    }
    print_long_term(ctx, s.long_term);
    std::cout << "  => " << (s.ok() ? ctx.tr("HỢP LỆ", "VALID") : ctx.tr("KHÔNG HỢP LỆ", "INVALID"))
              << '\n';
  }
  for (const auto& t : rep.document_timestamps) {
    std::cout << '\n'
              << ctx.tr("Dấu thời gian tài liệu ", "Document timestamp ") << t.id << ": "
              << (t.time ? to_iso8601(*t.time)
                         : std::string(ctx.tr("KHÔNG ĐẠT", "FAILED")) + " (" + t.detail + ")")
              << '\n';
  }
  std::cout << '\n'
            << (rep.signatures.empty()
                    ? ctx.tr("Không tìm thấy chữ ký nào.", "No signatures found.")
                : rep.ok()
                    ? ctx.tr("Kết quả: tất cả chữ ký hợp lệ.", "Result: all signatures are valid.")
                    : ctx.tr("Kết quả: có chữ ký KHÔNG hợp lệ.",
                             "Result: some signatures are INVALID."))
            << '\n';
}

void cmd_verify(Context& ctx, const VerifyArgs& a) {
  formats::VerifyOptions o;
  o.anchors = a.trust.empty() ? default_trust_anchors() : a.trust;
  o.intermediates = a.intermediates;
  o.crl_files = a.crls;
  o.content = a.content;
  o.ocsp_url = a.ocsp_url;
  o.check_revocation = !a.no_revocation;
  const formats::VerifyReport rep = formats::verify_file(a.file, o);
  if (ctx.json) {
    Context::print_json(rep);
  } else {
    print_human(ctx, rep);
  }
  if (!rep.ok()) throw CLI::RuntimeError(2);
}

}  // namespace

void add_verify(CLI::App& app, Context& ctx) {
  static VerifyArgs args;
  auto* v = app.add_subcommand("verify", "Kiểm tra chữ ký (XML, PDF, CMS) / verify signatures");
  v->add_option("file", args.file, "Signed file: .xml, .pdf, .p7s/.p7m")
      ->required()
      ->check(CLI::ExistingFile);
  v->add_option("--trust", args.trust,
                "Trust anchor certificate file (repeatable; default /etc/kyso/trust/*.pem)");
  v->add_option("--ca", args.intermediates, "Extra intermediate CA certificate file (repeatable)");
  v->add_option("--crl", args.crls, "Local CRL file (repeatable)");
  v->add_option("--content", args.content, "The signed file, for a detached CMS signature")
      ->check(CLI::ExistingFile);
  v->add_option("--ocsp-url", args.ocsp_url,
                "OCSP responder to ask instead of the certificates' own");
  v->add_flag("--no-revocation", args.no_revocation, "Skip OCSP/CRL checks");
  v->add_flag("--json", ctx.json, "JSON output");
  v->callback([&ctx] { cmd_verify(ctx, args); });
}

}  // namespace kyso::cli
