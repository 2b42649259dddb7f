#include "kyso/verifyd/report.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "kyso/core/certificate.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/text.hpp"
#include "kyso/core/version.hpp"

namespace kyso::verifyd {
namespace {

using json = nlohmann::json;
using formats::CheckStatus;
using formats::IntegrityFailure;
using formats::PdfLaterChanges;
using formats::SignatureReport;

bool has(const SignatureReport& r, ErrorCode code) {
  return std::ranges::find(r.certificate_problems, code) != r.certificate_problems.end();
}

// "pss", "pkcs1-v1_5" or "ecdsa" from formats' algorithm (a CMS OID pair or an XML-DSig URI).
std::string padding_of(const std::string& algorithm) {
  const std::string a = ascii_lower(algorithm);
  if (a.find("pss") != std::string::npos || a.find("mgf1") != std::string::npos) return "pss";
  if (a.find("ecdsa") != std::string::npos || a.find("ecpublickey") != std::string::npos)
    return "ecdsa";
  if (a.find("rsa") != std::string::npos) return "pkcs1-v1_5";
  return "unknown";
}

std::string revocation_source(const SignatureReport& r) {
  // B-LT/B-LTA: judged offline from the validation data the document carries.
  if (r.long_term.offline) return r.revocation == CheckStatus::Ok ? "embedded" : "none";
  const std::string d = ascii_lower(r.revocation_detail);
  if (d == "not checked") return "none";
  if (d.find("ocsp") != std::string::npos) return "ocsp";
  if (d.find("crl") != std::string::npos) return "crl";
  return "none";
}

json time_or_null(const std::optional<std::chrono::system_clock::time_point>& t) {
  return t ? json(to_iso8601(*t)) : json(nullptr);
}

json warning(const char* code, const std::string& vi, const std::string& en) {
  return {{"code", code}, {"vi", vi}, {"en", en}};
}

}  // namespace

std::string_view to_string(Indication i) noexcept {
  switch (i) {
    case Indication::TotalPassed:
      return "TOTAL-PASSED";
    case Indication::TotalFailed:
      return "TOTAL-FAILED";
    case Indication::Indeterminate:
      return "INDETERMINATE";
  }
  return "INDETERMINATE";
}

// ETSI TS 119 102-1, clause 5.1.3 (tables 5 and 6), applied in the order its building blocks
// run: the signature itself (format, digests, value), then what the document became after it,
// then the signing certificate (revocation and validity with or without a proof of existence,
// chain, binding), then revocation information that could not be had.
Verdict judge(const SignatureReport& r) {
  const bool poe = r.timestamp.has_value();  // a verified timestamp proves when it existed
  if (!r.integrity) {
    switch (r.integrity_failure) {
      case IntegrityFailure::Digest:
        return {Indication::TotalFailed, "HASH_FAILURE", "DOCUMENT_CHANGED"};
      case IntegrityFailure::SignatureValue:
        return {Indication::TotalFailed, "SIG_CRYPTO_FAILURE", "SIGNATURE_VALUE_INVALID"};
      default:
        return {Indication::TotalFailed, "FORMAT_FAILURE", "SIGNATURE_MALFORMED"};
    }
  }
  if (r.later_changes && r.later_changes->kind == PdfLaterChanges::Kind::ContentChanged) {
    return {Indication::TotalFailed, "FORMAT_FAILURE", "CONTENT_CHANGED_AFTER_SIGNING"};
  }
  if (r.revocation == CheckStatus::Failed || has(r, ErrorCode::CertRevoked)) {
    return poe ? Verdict{Indication::TotalFailed, "REVOKED", "CERTIFICATE_REVOKED"}
               : Verdict{Indication::Indeterminate, "REVOKED_NO_POE", "CERTIFICATE_REVOKED"};
  }
  if (has(r, ErrorCode::CertExpired)) {
    return poe ? Verdict{Indication::TotalFailed, "EXPIRED", "CERTIFICATE_EXPIRED_AT_SIGNING"}
               : Verdict{Indication::Indeterminate, "OUT_OF_BOUNDS_NO_POE",
                         "CERTIFICATE_EXPIRED_AT_SIGNING"};
  }
  if (has(r, ErrorCode::CertNotYetValid)) {
    return poe ? Verdict{Indication::TotalFailed, "NOT_YET_VALID", "CERTIFICATE_NOT_YET_VALID"}
               : Verdict{Indication::Indeterminate, "OUT_OF_BOUNDS_NO_POE",
                         "CERTIFICATE_NOT_YET_VALID"};
  }
  if (!r.signer || has(r, ErrorCode::CertInvalid)) {
    return {Indication::Indeterminate, "NO_SIGNING_CERTIFICATE_FOUND", "CERTIFICATE_UNREADABLE"};
  }
  if (has(r, ErrorCode::CertUntrusted) ||
      (r.chain == CheckStatus::Failed && r.certificate_problems.empty())) {
    return {Indication::Indeterminate, "NO_CERTIFICATE_CHAIN_FOUND", "UNTRUSTED_CHAIN"};
  }
  if (has(r, ErrorCode::CertKeyUsage)) {
    return {Indication::Indeterminate, "CHAIN_CONSTRAINTS_FAILURE", "KEY_USAGE"};
  }
  if (r.chain == CheckStatus::Failed) {
    return {Indication::Indeterminate, "CERTIFICATE_CHAIN_GENERAL_FAILURE", "CHAIN_FAILED"};
  }
  if (r.signing_certificate == CheckStatus::Failed) {
    return {Indication::Indeterminate, "NO_SIGNING_CERTIFICATE_FOUND",
            "SIGNING_CERTIFICATE_MISMATCH"};
  }
  if (r.revocation == CheckStatus::Unknown && r.revocation_detail != "not checked") {
    return {Indication::Indeterminate, "TRY_LATER", "REVOCATION_UNKNOWN"};
  }
  return {Indication::TotalPassed, "", ""};
}

std::string baseline_level(const SignatureReport& r) {
  return std::string(formats::to_string(r.long_term.level));
}

json report_json(const formats::VerifyReport& report, const ReportContext& ctx) {
  json sigs = json::array();
  int passed = 0;
  int failed = 0;
  int indeterminate = 0;
  for (const auto& r : report.signatures) {
    const Verdict v = judge(r);
    (v.indication == Indication::TotalPassed   ? passed
     : v.indication == Indication::TotalFailed ? failed
                                               : indeterminate)++;
    json signer = nullptr;
    if (r.signer) {
      const auto& c = *r.signer;
      json ids = json::array();
      for (const auto& u : c.uids) ids.push_back({{"type", u.prefix}, {"value", u.value}});
      signer = {{"name", c.common_name},
                {"kind", std::string(to_string(c.kind))},
                {"identifiers", ids},
                {"title", c.title},
                {"organization", c.organization},
                {"subject", c.subject},
                {"issuer", c.issuer_common_name},
                {"serialNumber", c.serial_hex},
                {"certificateSha256", c.id},
                {"notBefore", to_iso8601(c.not_before)},
                {"notAfter", to_iso8601(c.not_after)}};
    }
    json role = nullptr;
    if (r.role) {
      role = {{"code", std::string(to_string(*r.role))},
              {"vi", std::string(role_label(*r.role, Language::Vi))},
              {"en", std::string(role_label(*r.role, Language::En))},
              {"source", "certificate"}};
    }
    const std::string proof = r.timestamp ? "timestamp" : r.signing_time ? "claimed" : "none";
    const auto best_time = r.timestamp ? r.timestamp : r.signing_time;
    const std::string padding = padding_of(r.algorithm);
    json warnings = json::array();
    if (padding == "pkcs1-v1_5") {
      warnings.push_back(warning(
          "RSA_PKCS1_V15",
          "Chữ ký dùng RSA PKCS#1 v1.5; Thông tư 15/2025/TT-BKHCN yêu cầu RSA-PSS cho chữ ký mới.",
          "The signature uses RSA PKCS#1 v1.5; Circular 15/2025/TT-BKHCN asks for RSA-PSS in new "
          "signatures."));
    }
    if (!r.timestamp) {
      warnings.push_back(warning("NO_TIMESTAMP",
                                 "Không có dấu thời gian: thời điểm ký là do người ký tự khai.",
                                 "No timestamp: the signing time is the signer's own claim."));
    }
    if (r.integrity && r.integrity_detail.find("timestamp") != std::string::npos) {
      warnings.push_back(warning("TIMESTAMP_INVALID", "Dấu thời gian kèm theo không kiểm tra được.",
                                 "The attached timestamp could not be verified."));
    }
    if (r.later_changes && r.later_changes->kind == PdfLaterChanges::Kind::SignaturesOrFormFields) {
      warnings.push_back(
          warning("LATER_SIGNATURES", "Sau chữ ký này chỉ có thêm chữ ký hoặc trường biểu mẫu.",
                  "After this signature only signatures or form fields were added."));
    }
    json later = nullptr;
    if (r.later_changes) {
      later = {{"kind", std::string(to_string(r.later_changes->kind))},
               {"signaturesAdded", r.later_changes->signatures_added},
               {"formFieldsAdded", r.later_changes->form_fields_added},
               {"changed", r.later_changes->changed}};
    }
    json times = json::array();
    for (const auto& t : r.long_term.archive_timestamps) times.push_back(to_iso8601(t));
    const json long_term = {{"offline", r.long_term.offline},
                            {"validatedAt", time_or_null(r.long_term.validated_at)},
                            {"archiveTimestamps", times},
                            {"coveredUntil", time_or_null(r.long_term.covered_until)},
                            {"evidence", r.long_term.evidence},
                            {"problem", r.long_term.problem}};
    if (r.long_term.offline && !r.long_term.problem.empty()) {
      warnings.push_back(
          warning("LONG_TERM_DATA_INVALID",
                  "Dữ liệu kiểm tra lâu dài kèm trong tài liệu không đủ hoặc không hợp lệ.",
                  "The long-term validation data in the document is incomplete or invalid."));
    }
    json problems = json::array();
    for (const auto p : r.certificate_problems) problems.push_back(std::string(code_name(p)));
    const std::string status = r.revocation == CheckStatus::Ok        ? "good"
                               : r.revocation == CheckStatus::Failed  ? "revoked"
                               : r.revocation_detail == "not checked" ? "not-checked"
                                                                      : "unknown";
    json sig = {
        {"id", r.id},
        {"format", r.format},
        {"level", baseline_level(r)},
        {"indication", std::string(to_string(v.indication))},
        {"subIndication", v.sub_indication.empty() ? json(nullptr) : json(v.sub_indication)},
        {"reason", v.reason.empty() ? json(nullptr) : json(v.reason)},
        {"signer", signer},
        {"role", role},
        {"signingTime",
         {{"time", time_or_null(best_time)},
          {"proof", proof},
          {"claimed", time_or_null(r.signing_time)},
          {"timestamp", time_or_null(r.timestamp)}}},
        {"algorithm", {{"name", r.algorithm}, {"padding", padding}}},
        {"integrity",
         {{"ok", r.integrity},
          {"failure", std::string(to_string(r.integrity_failure))},
          {"detail", r.integrity_detail}}},
        {"longTerm", long_term},
        {"coversWholeFile", r.covers_whole_file ? json(*r.covers_whole_file) : json(nullptr)},
        {"laterChanges", later},
        {"certificate",
         {{"chain", {{"status", std::string(to_string(r.chain))}, {"detail", r.chain_detail}}},
          {"status",
           {{"status", status},
            {"source", revocation_source(r)},
            {"judgedAt", time_or_null(r.checked_at)},
            {"detail", r.revocation_detail}}},
          {"binding",
           {{"status", std::string(to_string(r.signing_certificate))},
            {"detail", r.signing_certificate_detail}}},
          {"problems", problems}}},
        {"warnings", warnings}};
    sigs.push_back(std::move(sig));
  }
  Indication overall = Indication::TotalPassed;
  std::string sub;
  if (report.signatures.empty()) {
    overall = Indication::Indeterminate;
    sub = "SIGNED_DATA_NOT_FOUND";
  } else if (failed > 0) {
    overall = Indication::TotalFailed;
  } else if (indeterminate > 0) {
    overall = Indication::Indeterminate;
  }
  // The document's sub-indication is that of its first signature with the overall indication.
  if (overall != Indication::TotalPassed && sub.empty()) {
    for (const auto& s : sigs) {
      if (s["indication"] == std::string(to_string(overall))) {
        sub = s["subIndication"].get<std::string>();
        break;
      }
    }
  }
  return {{"reportVersion", 1},
          {"service",
           {{"name", ctx.service_name}, {"software", "kyso-verifyd " + std::string(version())}}},
          {"validationTime", to_iso8601(ctx.validation_time)},
          {"document",
           {{"kind", report.kind}, {"sha256", ctx.document_sha256}, {"size", ctx.document_size}}},
          {"policy",
           {{"trustAnchors", ctx.trust_anchors}, {"revocationChecked", ctx.revocation_checked}}},
          {"indication", std::string(to_string(overall))},
          {"subIndication", sub.empty() ? json(nullptr) : json(sub)},
          {"summary",
           {{"signatures", report.signatures.size()},
            {"passed", passed},
            {"failed", failed},
            {"indeterminate", indeterminate}}},
          {"signatures", sigs}};
}

namespace {

// "2026-12-02T05:00:00Z" -> "02/12/2026 12:00:00 (GMT+7)": Vietnam's time, as people read it.
std::string local_time(const json& iso) {
  if (!iso.is_string()) return "";
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (std::sscanf(iso.get<std::string>().c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi,
                  &s) != 6) {
    return iso.get<std::string>();
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h + 7;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const std::time_t t = timegm(&tm);
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%d/%m/%Y %H:%M:%S (GMT+7)", &tm);
  return buf;
}

std::string str(const json& j) {
  return j.is_string() ? j.get<std::string>() : "";
}

// Breaks a line at spaces so no piece is longer than `width` characters (UTF-8 aware).
void wrap(std::vector<std::string>& out, const std::string& line, std::size_t width = 88) {
  std::string cur;
  std::size_t cur_len = 0;
  std::string word;
  std::size_t word_len = 0;
  auto flush_word = [&] {
    if (cur_len > 0 && cur_len + 1 + word_len > width) {
      out.push_back(cur);
      cur = "    ";
      cur_len = 4;
    } else if (cur_len > 0 && !cur.ends_with("    ")) {
      cur += ' ';
      ++cur_len;
    }
    cur += word;
    cur_len += word_len;
    word.clear();
    word_len = 0;
  };
  for (const char c : line) {
    if (c == ' ' && !word.empty()) {
      flush_word();
      continue;
    }
    word += c;
    if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++word_len;
  }
  if (!word.empty()) flush_word();
  out.push_back(cur);
}

}  // namespace

std::vector<std::string> report_lines(const json& rep, Language lang) {
  const bool vi = lang == Language::Vi;
  auto tr = [vi](const char* v, const char* e) { return std::string(vi ? v : e); };
  std::vector<std::string> out;
  auto line = [&](const std::string& l) { wrap(out, l); };
  const std::string ind = str(rep["indication"]);
  line(tr("BIÊN BẢN KIỂM TRA CHỮ KÝ SỐ", "DIGITAL SIGNATURE VALIDATION REPORT"));
  line(tr("Đơn vị kiểm tra: ", "Checked by: ") + str(rep["service"]["name"]));
  line(tr("Thời điểm kiểm tra: ", "Checked at: ") + local_time(rep["validationTime"]));
  line(tr("Tài liệu: ", "Document: ") + str(rep["document"]["kind"]) + ", " +
       std::to_string(rep["document"]["size"].get<std::size_t>()) + tr(" byte", " bytes"));
  line("SHA-256: " + str(rep["document"]["sha256"]));
  line("");
  const std::string verdict =
      ind == "TOTAL-PASSED"
          ? tr("HỢP LỆ: mọi chữ ký đều đúng và tài liệu không bị sửa sau khi ký",
               "VALID: every signature is correct and the document was not changed after signing")
      : ind == "TOTAL-FAILED" ? tr("KHÔNG HỢP LỆ", "NOT VALID")
                              : tr("CHƯA XÁC ĐỊNH ĐƯỢC", "CANNOT BE CONFIRMED");
  line(tr("KẾT LUẬN: ", "RESULT: ") + verdict);
  line(tr("Chỉ dấu ETSI: ", "ETSI indication: ") + ind +
       (rep["subIndication"].is_string() ? " / " + str(rep["subIndication"]) : ""));
  int n = 0;
  for (const auto& s : rep["signatures"]) {
    line("");
    line(tr("Chữ ký ", "Signature ") + std::to_string(++n) + ": " + str(s["indication"]) +
         (s["subIndication"].is_string() ? " / " + str(s["subIndication"]) : ""));
    if (s["signer"].is_object()) {
      std::string who = str(s["signer"]["name"]);
      for (const auto& id : s["signer"]["identifiers"])
        who += ", " + str(id["type"]) + " " + str(id["value"]);
      line(tr("  Người ký: ", "  Signer: ") + who);
      if (!str(s["signer"]["organization"]).empty())
        line(tr("  Đơn vị: ", "  Organization: ") + str(s["signer"]["organization"]));
      line(tr("  Chứng thư do: ", "  Certificate issued by: ") + str(s["signer"]["issuer"]));
    }
    if (s["role"].is_object())
      line(tr("  Vai trò: ", "  Role: ") + str(s["role"][vi ? "vi" : "en"]));
    const std::string proof = str(s["signingTime"]["proof"]);
    line(tr("  Thời điểm ký: ", "  Signed at: ") + local_time(s["signingTime"]["time"]) +
         (proof == "timestamp" ? tr(" (xác nhận bởi dấu thời gian)", " (proved by a timestamp)")
          : proof == "claimed" ? tr(" (do người ký tự khai)", " (claimed by the signer)")
                               : tr("không rõ", "unknown")));
    line(tr("  Mức chữ ký: ", "  Level: ") + str(s["level"]) + ", " + str(s["format"]) + ", " +
         str(s["algorithm"]["padding"]));
    if (s["longTerm"]["coveredUntil"].is_string()) {
      line(tr("  Bằng chứng lâu dài còn hiệu lực đến: ", "  Long-term proof holds until: ") +
           local_time(s["longTerm"]["coveredUntil"]));
    }
    line(tr("  Toàn vẹn: ", "  Integrity: ") +
         (s["integrity"]["ok"].get<bool>() ? tr("đạt", "ok") : tr("KHÔNG ĐẠT", "FAILED")));
    if (s["laterChanges"].is_object()) {
      const std::string k = str(s["laterChanges"]["kind"]);
      line(tr("  Sau khi ký: ", "  After signing: ") +
           (k == "none" ? tr("không thay đổi", "no changes")
            : k == "signatures-or-form-fields"
                ? tr("chỉ thêm chữ ký hoặc trường biểu mẫu", "only signatures or form fields added")
                : tr("NỘI DUNG ĐÃ BỊ THAY ĐỔI", "CONTENT WAS CHANGED")));
    }
    const auto& cert = s["certificate"];
    line(tr("  Chuỗi chứng thư tới gốc tin cậy: ", "  Chain to a trust anchor: ") +
         str(cert["chain"]["status"]));
    line(tr("  Tình trạng chứng thư: ", "  Certificate status: ") + str(cert["status"]["status"]) +
         " (" + str(cert["status"]["source"]) + ")");
    for (const auto& w : s["warnings"])
      line(tr("  Lưu ý: ", "  Note: ") + str(w[vi ? "vi" : "en"]));
  }
  line("");
  line(tr("Biên bản này được ký bằng con dấu điện tử của đơn vị kiểm tra.",
          "This report is sealed with the checking service's electronic seal."));
  return out;
}

}  // namespace kyso::verifyd
