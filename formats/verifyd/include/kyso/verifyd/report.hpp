#pragma once
/// @file
/// The validation report of kyso-verifyd (docs/schemas/validation-report.json): formats'
/// verification of every signature judged in ETSI TS 119 102-1/-2 terms (TOTAL-PASSED,
/// TOTAL-FAILED, INDETERMINATE with a sub-indication), plus what a reader needs: who signed, in
/// which role, when and what proves it, the baseline level, what changed afterwards, the
/// certificate's status and warnings.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kyso/formats/verify.hpp"

namespace kyso::verifyd {

enum class Indication { TotalPassed, TotalFailed, Indeterminate };
std::string_view to_string(Indication i) noexcept;  ///< "TOTAL-PASSED", ...

/// ETSI's verdict for one signature. `sub_indication` is empty for TOTAL-PASSED.
struct Verdict {
  Indication indication = Indication::Indeterminate;
  std::string sub_indication;  ///< e.g. "HASH_FAILURE", "REVOKED", "NO_CERTIFICATE_CHAIN_FOUND"
  std::string reason;          ///< Kyso's own finer code, e.g. "CONTENT_CHANGED_AFTER_SIGNING"
};

/// Judges one signature of formats' report.
Verdict judge(const formats::SignatureReport& r);

/// The baseline level formats' verification proved: "B-B", "B-T" (a verified signature
/// timestamp), "B-LT" (and the document's own validation data validates it offline) or "B-LTA"
/// (and an archive timestamp covers it all).
std::string baseline_level(const formats::SignatureReport& r);

/// What else the validation records beside formats' report.
struct ReportContext {
  std::string service_name;
  std::string document_sha256;  ///< of the uploaded document
  std::size_t document_size = 0;
  std::chrono::system_clock::time_point validation_time;
  bool revocation_checked = true;
  std::vector<std::string> trust_anchors;  ///< subjects of the configured anchors
};

/// The report as JSON, following docs/schemas/validation-report.json.
nlohmann::json report_json(const formats::VerifyReport& report, const ReportContext& context);

/// The same report as lines of text for a person (the signed PDF report), in `lang`.
std::vector<std::string> report_lines(const nlohmann::json& report, Language lang);

}  // namespace kyso::verifyd
