#pragma once
/// @file
/// Augmenting signed documents (PDF, XML, CMS) to B-LT or B-LTA (`kyso extend`): the validation
/// data of every signature and timestamp in the file is fetched (OCSP, else CRL) and added, and
/// for B-LTA an archive timestamp over all of it; earlier signatures are never touched, so they
/// stay valid.
/// Idempotent: a file already at the level asked for is left as it is, unless its last
/// timestamp's certificate expires within `renew_before`, when a new archive timestamp is added.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/tsa.hpp"
#include "kyso/formats/verify.hpp"

namespace kyso::formats {

struct ExtendOptions {
  BaselineLevel to = BaselineLevel::LT;  ///< LT or LTA
  /// Anchors, intermediates, OCSP URL override, local CRLs and timeout used to build the chains
  /// and fetch their revocation data.
  TrustConfig trust;
  /// Needed for B-LTA, and for a signature with no timestamp at all (it gets a PDF document
  /// timestamp first).
  std::optional<TsaConfig> tsa;
  /// B-LTA: re-timestamp when the last timestamp's certificate chain expires within this.
  std::optional<std::chrono::hours> renew_before;
  /// A detached CMS: the file it signs (its archive timestamps cover its digest).
  std::string content;
};

struct ExtendResult {
  std::string file;
  std::string kind;                         ///< "pdf", "xml", "cms"
  BaselineLevel before = BaselineLevel::B;  ///< the lowest level among the file's signatures
  BaselineLevel after = BaselineLevel::B;
  bool changed = false;
  std::uint64_t bytes_added = 0;
  std::vector<std::string> added;  ///< what was appended, e.g. "DSS: 4 certificates, 3 OCSP"
  /// When the last timestamp's certificate chain expires (B-LTA: renew before then).
  std::optional<std::chrono::system_clock::time_point> covered_until;
};

/// Extends `path` in place (written to a temporary file and renamed, so a failure leaves the
/// file as it was). Throws Error(DocumentInvalid) for a file without signatures or with one that
/// does not verify (integrity), Error(CertUntrusted/CertRevoked/CertRevocationUnknown) when the
/// validation data cannot be had, Error(TsaNotConfigured) when a timestamp is needed and no TSA
/// is configured, Error(TsaUnavailable/TsaError) from the TSA.
ExtendResult extend_file(const std::string& path, const ExtendOptions& options);

}  // namespace kyso::formats
