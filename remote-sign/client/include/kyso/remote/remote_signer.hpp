#pragma once
/// @file
/// Remote credentials as kyso::Signer. RemoteSigner is what the agent and the format code see;
/// the provider's protocol lives in a ProviderAdapter. CscAdapter speaks CSC v2 (kyso-appliance,
/// CSC-conformant providers); an asynchronous provider (the user approves on a phone and the
/// client polls, as VNPT SmartCA or MISA eSign do) is one more adapter, with no change to the
/// agent (docs/remote-signing.md, "Adding a provider").

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/secret.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/remote/csc_client.hpp"

namespace kyso::remote {

/// What a provider needs before it signs (kyso::AuthNeeds: PIN, OTP, approval on a phone).
using AuthNeeds = kyso::AuthNeeds;
/// Progress per chunk and cancellation for a long sign (kyso::SignControl).
using SignControl = kyso::SignControl;

/// One remote signing service's protocol. Implementations may block (network, polling); the
/// agent calls them on a worker thread. Errors are kyso::Error with the remote codes
/// (RemoteUnreachable, RemoteAuthFailed, RemoteError, OtpIncorrect, PinIncorrect, Timeout).
class ProviderAdapter {
 public:
  ProviderAdapter() = default;
  virtual ~ProviderAdapter() = default;
  ProviderAdapter(const ProviderAdapter&) = delete;
  ProviderAdapter& operator=(const ProviderAdapter&) = delete;
  ProviderAdapter(ProviderAdapter&&) = delete;
  ProviderAdapter& operator=(ProviderAdapter&&) = delete;

  /// The service's name as the user knows it ("Sở GD&ĐT - máy ký").
  [[nodiscard]] virtual std::string name() const = 0;
  /// The user's credentials at the service (after the adapter has logged in).
  virtual std::vector<Credential> credentials() = 0;
  [[nodiscard]] virtual AuthNeeds needs(const std::string& credential_id) const = 0;
  /// Authorizes exactly `digests` for one batch (SCAL2). `pin`/`otp` may be null when not needed.
  virtual void authorize(const std::string& credential_id, const Secret* pin, const Secret* otp,
                         std::span<const Bytes> digests, HashAlgorithm hash) = 0;
  /// Signs digests authorized before, in order; one result per digest.
  virtual std::vector<SignResult> sign(const std::string& credential_id, SignAlgorithm alg,
                                       std::span<const Bytes> digests,
                                       const SignControl& control) = 0;
};

/// CSC v2 (and v1.0.4-flavoured) services. authorize() sends one credentials/authorize for the
/// whole batch (every distinct hash, `numSignatures` = their count; PIN + OTP, once: a wrong one
/// fails there); sign() sends one signatures/signHash per `multisign` chunk under that one SAD,
/// on `pipeline` connections at once so the HSM signs one chunk while the next travels. A batch
/// outliving half the SAD's life renews it with one credentials/extendTransaction (same
/// approval, never more hashes).
class CscAdapter : public ProviderAdapter {
 public:
  /// `client` must be logged in already (the agent logs in with the user's password).
  CscAdapter(std::string name, std::shared_ptr<CscClient> client, std::size_t pipeline = 2);

  [[nodiscard]] std::string name() const override { return name_; }
  std::vector<Credential> credentials() override;
  [[nodiscard]] AuthNeeds needs(const std::string& credential_id) const override;
  void authorize(const std::string& credential_id, const Secret* pin, const Secret* otp,
                 std::span<const Bytes> digests, HashAlgorithm hash) override;
  std::vector<SignResult> sign(const std::string& credential_id, SignAlgorithm alg,
                               std::span<const Bytes> digests, const SignControl& control) override;
  /// HTTP round trips on all of this adapter's connections.
  [[nodiscard]] std::size_t round_trips() const;

 private:
  const RemoteCredentialInfo& info(const std::string& id) const;
  /// The SAD to sign with now, renewed by extendTransaction once it is half-way to expiry.
  std::string live_sad(CscClient& c, const std::string& credential_id);
  /// Runs fn(client, i) for i in [0, count) over up to `pipeline_` connections; rethrows the
  /// first exception after all lanes stopped.
  template <typename Fn>
  void run_jobs(std::size_t count, Fn&& fn);

  std::string name_;
  std::shared_ptr<CscClient> client_;
  std::size_t pipeline_;
  std::vector<std::unique_ptr<CscClient>> lanes_;  // the extra connections
  mutable std::mutex mutex_;
  std::vector<RemoteCredentialInfo> infos_;
  std::set<Bytes> approved_;  // the current authorization's digests not signed yet
  std::string sad_;
  std::chrono::steady_clock::time_point sad_renew_at_;
  HashAlgorithm hash_ = HashAlgorithm::Sha256;
  std::mutex extend_mutex_;
};

/// A remote credential as a kyso::Signer.
class RemoteSigner : public Signer {
 public:
  RemoteSigner(std::shared_ptr<ProviderAdapter> adapter, Credential credential);

  [[nodiscard]] const Credential& credential() const override { return credential_; }
  /// Otp when the service wants one (besides a PIN or not), else Pin when it wants a PIN, else
  /// None.
  [[nodiscard]] AuthKind auth_required() const override;
  [[nodiscard]] AuthNeeds needs() const override { return adapter_->needs(remote_id()); }
  /// One authorization for exactly `digests` with the PIN and OTP the user typed (as needs()
  /// asks). Never retried.
  void authorize(const UserAuth& typed, std::span<const Bytes> digests) override;
  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc = SignatureEncoding::Der) override;
  [[nodiscard]] bool signs_in_chunks() const noexcept override { return true; }
  /// One request per authorized chunk, with progress per request and cancellation.
  std::vector<SignResult> sign_digests(SignAlgorithm alg, std::span<const Bytes> digests,
                                       SignatureEncoding enc = SignatureEncoding::Der,
                                       const SignControl& control = {}) override;

 private:
  /// The credential's id at the provider (source.serial), which may differ from Kyso's id.
  [[nodiscard]] const std::string& remote_id() const noexcept;

  std::shared_ptr<ProviderAdapter> adapter_;
  Credential credential_;
};

}  // namespace kyso::remote
