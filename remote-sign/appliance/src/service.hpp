#pragma once
// The CSC API's logic, apart from the transport: one call per HTTP request, made on a worker
// thread (it verifies passwords, talks to SQLite and waits for the HSM).

#include <boost/asio/thread_pool.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/http_server.hpp"
#include "kyso/core/pin_tag.hpp"
#include "kyso/pkcs11/library.hpp"

namespace kyso::appliance {

// The transport is the shared server skeleton (kyso/core/http_server.hpp).
using HttpRequest = kyso::HttpRequest;
using HttpResponse = kyso::HttpResponse;

/// An error as CSC returns it: HTTP status, `error` and `error_description`.
struct CscError {
  unsigned status;
  std::string error;
  std::string description;
};

HttpResponse error_response(const CscError& e);

/// An application/x-www-form-urlencoded body (oauth2/token, RFC 6749) as name -> value, `+` and
/// %XX decoded; a later name replaces an earlier one. Throws std::exception for a malformed %XX.
std::map<std::string, std::string> decode_form(std::string_view body);

/// Dummy password hashes checked for names that do not exist. An unknown name is checked against
/// a dummy with the scrypt parameters of a configured account picked by a keyed hash of the name,
/// so it answers as slowly as a known one whatever each account's cost, and the same name always
/// takes the same time (nothing to average out).
class ShadowHashes {
 public:
  /// `real`: the accounts' hashes (one dummy per distinct parameter set is made).
  explicit ShadowHashes(const std::vector<std::string>& real);
  [[nodiscard]] const std::string& pick(std::string_view name) const;

 private:
  std::array<unsigned char, 32> key_{};
  std::vector<std::string> dummies_;      // one per distinct parameter set
  std::vector<std::size_t> per_account_;  // account -> its dummy
};

class Service {
 public:
  Service(const ApplianceConfig& config, StateStore& store, pkcs11::Library& library,
          boost::asio::thread_pool& sign_pool);

  /// Never throws: every failure becomes a CSC error response.
  HttpResponse handle(HttpRequest& req) noexcept;
  /// Requests handled so far (benchmarks count round trips on the server's side).
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_.load(); }
  /// Seconds the HSM sessions have spent signing signHash shares, summed over the sessions.
  [[nodiscard]] double signing_seconds() const noexcept {
    return static_cast<double>(signing_ns_.load()) * 1e-9;
  }

 private:
  struct HsmCredential {
    Credential credential;
    std::shared_ptr<pkcs11::Token> token;
    std::shared_ptr<Signer> signer;
  };
  struct Caller {
    std::string user;
    std::string bearer;  // SHA-256 hex of the token
  };

  HttpResponse handle_logged(HttpRequest& req) noexcept;
  HttpResponse dispatch(const std::string& method, HttpRequest& req);
  Caller authenticate(const HttpRequest& req);
  /// The SHA-256 hex of the request's bearer token (401 without one).
  static std::string bearer_hash(const HttpRequest& req);
  /// The caller a token lookup found (401 when none).
  static Caller known_caller(std::optional<std::string> user, std::string bearer);
  const ApplianceUser& user(const std::string& name) const;
  const HsmCredential& owned_credential(const Caller& caller, const std::string& id) const;

  HttpResponse info();
  /// GET /health: the HSM answers C_GetTokenInfo and the database a query (the balancer's
  /// check); 503 when either does not.
  HttpResponse health();
  HttpResponse auth_login(const HttpRequest& req);
  HttpResponse auth_revoke(const HttpRequest& req);
  HttpResponse oauth2_token(HttpRequest& req);
  HttpResponse credentials_list(const HttpRequest& req);
  HttpResponse credentials_info(const HttpRequest& req);
  HttpResponse credentials_authorize(HttpRequest& req);
  HttpResponse credentials_extend(const HttpRequest& req);
  HttpResponse signatures_sign_hash(const HttpRequest& req);

  std::string issue_token(const std::string& user);
  /// Logs the credential's HSM session in with the PIN sealed in the SAD when this node's session
  /// is not logged in (the approval was made on another node).
  void login_for(const std::string& user, const HsmCredential& cred, const std::string& sad_text,
                 const SadRecord& sad);
  /// nullopt when right; else the error to answer, with the audit's reason in `why`.
  std::optional<CscError> check_pin(const std::string& user, const HsmCredential& cred,
                                    const Secret& pin, std::string& why);
  std::optional<CscError> check_otp(const ApplianceUser& user, const Secret* otp, std::string& why);

  const ApplianceConfig& config_;
  StateStore& store_;
  boost::asio::thread_pool& sign_pool_;
  std::map<std::string, HsmCredential> credentials_;
  std::map<std::string, const ApplianceUser*> users_;
  ShadowHashes user_shadows_;
  ShadowHashes client_shadows_;

  // The HSM checks the PIN at the token's first login; after that the PIN it accepted is
  // compared in memory as an HMAC tag (the token cannot check a PIN twice in one process).
  std::mutex pin_mutex_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> signing_ns_{0};
  PinTagger pin_tags_;
  std::map<std::string, PinTagger::Tag> accepted_pins_;  // token identity -> tag
};

}  // namespace kyso::appliance
