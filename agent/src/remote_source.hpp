#pragma once
// The agent's remote signing services (the [[remote]] entries of its configuration): which are
// signed in, the credentials each listed at its last sign-in (kept in the state directory, so
// credentials.list shows them after a restart without a dialog or a network call), and signers
// for them. The dialogs and the audit log stay in Service (remote_source.cpp's Service members).

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/secret.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/remote/remote_signer.hpp"

namespace kyso::agent {

/// What the user is asked before `signer` can sign: a token's PIN (nothing for a PIN pad or a
/// token logged in already), or a remote key's PIN, OTP and approval on a phone.
remote::AuthNeeds auth_needs(const Signer& signer);

/// The one authorization of `signer` for exactly `digests` with what the user typed: a token's
/// one C_Login with the PIN (none for a PIN pad), or a remote key's one authorization with its
/// PIN and the OTP. Never retried; the secrets are wiped when they go out of scope here.
void authorize(Signer& signer, std::optional<Secret> pin, std::optional<Secret> otp,
               std::span<const Bytes> digests);

/// `signer` as a remote signer that signs in chunks (one request per chunk), else nullptr.
remote::RemoteSigner* chunked(Signer& signer) noexcept;

class RemoteSources {
 public:
  /// Asks the user for the service's login password (the agent's own dialog). Throws
  /// Error(UserCancelled) / Error(Timeout) like the dialog does.
  using AskPassword = std::function<Secret(const firmware_config::RemoteService&)>;

  RemoteSources(std::vector<firmware_config::RemoteService> services,
                std::filesystem::path cache_file);
  ~RemoteSources();
  RemoteSources(const RemoteSources&) = delete;
  RemoteSources& operator=(const RemoteSources&) = delete;
  RemoteSources(RemoteSources&&) = delete;
  RemoteSources& operator=(RemoteSources&&) = delete;

  [[nodiscard]] bool empty() const noexcept { return services_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return services_.size(); }
  [[nodiscard]] const firmware_config::RemoteService& service(std::size_t i) const {
    return services_[i];
  }

  /// Every remote credential known now (listed at a sign-in, this run or an earlier one).
  /// No network, no dialog.
  [[nodiscard]] std::vector<Credential> credentials() const;
  /// credentials.list's "remoteServices": name, url, username, signedIn, credentials.
  [[nodiscard]] nlohmann::json services_json() const;
  [[nodiscard]] bool signed_in(std::size_t i) const;
  /// The index of the service `cred` was listed by; nullopt for a token credential.
  [[nodiscard]] std::optional<std::size_t> service_of(const Credential& cred) const;

  /// Makes sure service `i` has a live session: checks the one it has with a credentials/list
  /// (and refreshes the credentials), otherwise checks that the service answers (`info`),
  /// asks the password, logs in and lists the credentials. Blocking (network, dialog).
  /// Throws Error(RemoteUnreachable / RemoteAuthFailed / RemoteLocked / UserCancelled ...).
  void sign_in(std::size_t i, const AskPassword& ask);

  /// A signer for `cred` on its service, which must be signed in (sign_in first); throws
  /// Error(CredentialNotFound) when the service no longer lists it.
  std::shared_ptr<remote::RemoteSigner> signer(const Credential& cred);

  /// HTTP round trips to service `i` so far (for the benchmark and tests).
  [[nodiscard]] std::size_t round_trips(std::size_t i) const;

 private:
  struct State;
  void refresh(State& s, std::size_t i);  // lists credentials; caller holds mutex_
  void save() const;                      // caller holds mutex_

  std::vector<firmware_config::RemoteService> services_;
  std::filesystem::path cache_file_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<State>> states_;
};

}  // namespace kyso::agent
