#pragma once
/// @file
/// Checks before signing (Circular 15/2025/TT-BKHCN): the certificate is within its validity,
/// its key usage allows signing, its chain builds to a configured trust anchor, and it is not
/// revoked (OCSP first, CRL when OCSP cannot answer). Results are cached for the checker's
/// lifetime, so one checker per batch asks the responder once per certificate.
/// Policy per deployment: refuse (default) or warn.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kyso/core/signer.hpp"

namespace kyso::formats {

enum class CheckPolicy { Refuse, Warn };

struct TrustConfig {
  std::vector<std::string> anchors;        ///< PEM/DER files of trust anchors (root CAs)
  std::vector<std::string> intermediates;  ///< extra issuing CAs, beside the token's chain
  bool check_revocation = true;
  /// Replaces the certificate's AIA OCSP URL (a local proxy or a test responder).
  std::string ocsp_url;
  bool crl_fallback = true;
  std::vector<std::string> crl_files;  ///< local CRLs tried before the CDP URLs
  std::chrono::seconds timeout{10};
  CheckPolicy policy = CheckPolicy::Refuse;
  /// When not empty, the certificates' own OCSP and CRL URLs are fetched only from these hosts
  /// ("host" any port, "host:port" that port; http/https only) and never from file:// URLs; the
  /// configured ocsp_url and crl_files still are. A service checking strangers' documents sets
  /// it, so a certificate cannot make it connect anywhere else.
  std::vector<std::string> fetch_hosts;
};

struct CertCheckResult {
  bool ok = true;
  std::vector<Error> problems;  ///< in the order found; empty when ok
  std::string revocation;       ///< "ocsp", "crl", "skipped" or "unknown"
};

class CertificateChecker {
 public:
  explicit CertificateChecker(TrustConfig config);

  /// Runs every check (cached per certificate). Refuse policy: throws the first problem.
  /// Warn policy: returns the problems and lets signing go ahead.
  CertCheckResult check(const Credential& credential, std::chrono::system_clock::time_point at =
                                                          std::chrono::system_clock::now());

  /// The checks without the policy: never throws for a certificate problem.
  CertCheckResult evaluate(const Credential& credential, std::chrono::system_clock::time_point at);

 private:
  TrustConfig config_;
  std::mutex mutex_;
  std::map<std::string, CertCheckResult> cache_;
};

/// A Signer that runs the checker before its first signature and then signs through `inner`:
/// a certificate the policy refuses never reaches the token.
class CheckedSigner final : public Signer {
 public:
  CheckedSigner(std::shared_ptr<Signer> inner, std::shared_ptr<CertificateChecker> checker);
  [[nodiscard]] const Credential& credential() const override { return inner_->credential(); }
  [[nodiscard]] AuthKind auth_required() const override { return inner_->auth_required(); }
  [[nodiscard]] AuthNeeds needs() const override { return inner_->needs(); }
  void authorize(const UserAuth& typed, std::span<const Bytes> digests) override;
  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc = SignatureEncoding::Der) override;
  /// Warnings from the check (Warn policy), once it ran.
  [[nodiscard]] const CertCheckResult& last_check() const noexcept { return result_; }

 private:
  void ensure_checked();
  std::shared_ptr<Signer> inner_;
  std::shared_ptr<CertificateChecker> checker_;
  std::mutex mutex_;  // batches may sign from several threads
  bool checked_ = false;
  CertCheckResult result_;
};

}  // namespace kyso::formats
