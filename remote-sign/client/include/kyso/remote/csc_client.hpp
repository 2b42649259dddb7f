#pragma once
/// @file
/// A client for the Cloud Signature Consortium API v2, lenient with v1.0.4 field names (the
/// Vietnamese providers mix both). One keep-alive HTTPS connection (kyso::http::Client), reused;
/// timeouts on every step; the server's certificate verified against the system store or a given
/// CA file.
///
/// Retries: a request that cannot have reached the server (connect failure, a kept-alive
/// connection found closed before sending) is retried for every method. A request that may
/// have been processed is retried only for read-only methods (info, credentials/list,
/// credentials/info) and signHash, which carries one X-Request-Id over its attempts (the
/// appliance gives a retried request its own hashes again and nothing more); auth, authorize and
/// extendTransaction are never re-sent. Every request carries an X-Request-Id for the logs.

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kyso/core/bytes.hpp"
#include "kyso/core/http.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::remote {

struct ClientOptions {
  std::string base_url;  ///< e.g. https://sign.example.vn/csc/v2 (no trailing slash needed)
  std::string ca_file;   ///< extra trust anchor (PEM); empty: the system store
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{60'000};
  /// A kept-alive connection idle for longer is reopened before a non-idempotent request
  /// (below the appliance's idle timeout), so such a request is never sent into a closing socket.
  std::chrono::milliseconds max_idle{10'000};
  int retries = 2;  ///< extra attempts where safe (see above)
  /// How long signHash keeps re-sending (same request id), after pauses, while the service
  /// answers 503 or cannot be reached: a node or the state database restarting behind a
  /// balancer (the agent's `[[remote]] unavailable_wait_seconds`). 0: only the immediate
  /// re-sends of `retries`.
  std::chrono::milliseconds unavailable_wait{30'000};
};

/// An answer as CscClient::call() returns it: status and body.
using HttpResult = http::Response;

/// What credentials/info says about a credential, v1.0.4 and v2 names folded together.
struct RemoteCredentialInfo {
  std::string id;
  std::string description;
  std::vector<Bytes> certificates;          ///< leaf first
  std::vector<std::string> key_algorithms;  ///< OIDs
  std::string auth_mode;                    ///< "explicit", "oauth2code", "implicit"
  bool pin = false;
  bool otp = false;
  int scal = 1;
  std::size_t multisign = 1;
};

/// Reads a credentials/info answer, v2 or v1.0.4 names (exposed for tests).
RemoteCredentialInfo parse_credential_info(std::string id, const nlohmann::json& j);

/// A SAD and how long it lives.
struct Authorization {
  std::string sad;
  std::chrono::seconds expires_in{0};
};

class CscClient {
 public:
  explicit CscClient(ClientOptions options);

  /// Another connection to the same service with the same access token (for pipelining).
  [[nodiscard]] std::unique_ptr<CscClient> clone() const;

  nlohmann::json info();
  /// auth/login with HTTP Basic. Throws Error(RemoteAuthFailed).
  void login(const std::string& user, const Secret& password);
  /// oauth2/token, client credentials grant.
  void login_client(const std::string& client_id, const Secret& secret);
  void set_access_token(std::string token) { token_ = std::move(token); }
  [[nodiscard]] const std::string& access_token() const noexcept { return token_; }
  [[nodiscard]] bool logged_in() const noexcept { return !token_.empty(); }

  std::vector<std::string> list_credentials();
  RemoteCredentialInfo credential_info(const std::string& id);
  /// credentials/authorize for exactly these hashes (SCAL2), PIN and OTP as the credential asks.
  /// Throws Error(PinIncorrect / OtpIncorrect / RemoteAuthFailed / RemoteError).
  Authorization authorize(const std::string& id, std::span<const Bytes> hashes, HashAlgorithm hash,
                          const Secret* pin, const Secret* otp);
  /// credentials/extendTransaction: a new SAD for the same approval (the old one dies). `hashes`
  /// (optional) must all be approved and unsigned; an extension never adds any.
  Authorization extend(const std::string& id, const std::string& sad, std::span<const Bytes> hashes,
                       HashAlgorithm hash);
  /// signatures/signHash: signatures in the order of `hashes`.
  std::vector<Bytes> sign_hash(const std::string& id, const std::string& sad,
                               std::span<const Bytes> hashes, SignAlgorithm alg);

  /// A raw call for tests and adapters: status and body, no error mapping.
  HttpResult call(const std::string& method, const std::string& body, bool idempotent = false);

  [[nodiscard]] std::size_t round_trips() const noexcept { return http_.round_trips(); }
  [[nodiscard]] std::size_t connections_opened() const noexcept {
    return http_.connections_opened();
  }
  /// The "specs" the server announced in info (empty before info()).
  [[nodiscard]] const std::string& specs() const noexcept { return specs_; }

 private:
  nlohmann::json checked(const std::string& method, const std::string& body, bool idempotent,
                         const std::map<std::string, std::string>& extra = {});
  /// POSTs `body` (JSON) to base_url + "/" + method.
  HttpResult post(const std::string& method, const std::string& body,
                  const std::map<std::string, std::string>& headers, bool idempotent);
  [[nodiscard]] bool v1() const noexcept { return specs_.starts_with("1."); }

  ClientOptions options_;
  http::Client http_;
  std::string token_;
  std::string specs_;
};

}  // namespace kyso::remote
