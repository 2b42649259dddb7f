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
#include <string>

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

class Service {
 public:
  Service(const ApplianceConfig& config, StateStore& store, pkcs11::Library& library,
          boost::asio::thread_pool& sign_pool);

  /// Never throws: every failure becomes a CSC error response.
  HttpResponse handle(HttpRequest& req) noexcept;
  /// Requests handled so far (benchmarks count round trips on the server's side).
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_.load(); }

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

  HttpResponse dispatch(const std::string& method, HttpRequest& req);
  Caller authenticate(const HttpRequest& req);
  const ApplianceUser& user(const std::string& name) const;
  const HsmCredential& owned_credential(const Caller& caller, const std::string& id) const;

  HttpResponse info();
  HttpResponse auth_login(const HttpRequest& req);
  HttpResponse auth_revoke(const HttpRequest& req);
  HttpResponse oauth2_token(HttpRequest& req);
  HttpResponse credentials_list(const HttpRequest& req);
  HttpResponse credentials_info(const HttpRequest& req);
  HttpResponse credentials_authorize(HttpRequest& req);
  HttpResponse credentials_extend(const HttpRequest& req);
  HttpResponse signatures_sign_hash(const HttpRequest& req);

  std::string issue_token(const std::string& user);
  void check_pin(const std::string& user, const HsmCredential& cred, const Secret& pin);
  void check_otp(const ApplianceUser& user, const Secret* otp);

  const ApplianceConfig& config_;
  StateStore& store_;
  boost::asio::thread_pool& sign_pool_;
  std::map<std::string, HsmCredential> credentials_;
  std::map<std::string, const ApplianceUser*> users_;
  std::string dummy_hash_;  // verified for unknown users: same cost as a real check

  // The HSM checks the PIN at the token's first login; after that the PIN it accepted is
  // compared in memory as an HMAC tag (the token cannot check a PIN twice in one process).
  std::mutex pin_mutex_;
  std::atomic<std::uint64_t> requests_{0};
  PinTagger pin_tags_;
  std::map<std::string, PinTagger::Tag> accepted_pins_;  // token identity -> tag
};

}  // namespace kyso::appliance
