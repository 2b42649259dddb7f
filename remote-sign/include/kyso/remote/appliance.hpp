#pragma once
/// @file
/// kyso-appliance: a Cloud Signature Consortium API v2 server over a PKCS#11 HSM.
///
/// Users log in (HTTP Basic at `auth/login`, or OAuth2 client credentials at `oauth2/token`) and
/// get a short-lived bearer token. `credentials/authorize` checks the credential's HSM PIN and a
/// TOTP (RFC 6238) and returns a SAD bound to the bearer, the credential and exactly the given
/// hashes (SCAL2); `signatures/signHash` consumes each hash once. State (bearer tokens, SADs,
/// lockouts, TOTP replay counters) and a hash-chained audit log live in SQLite.
///
/// The runtime configuration is defined here (IT writes it as JSON, see docs/remote-signing.md);
/// firmware-config has no appliance profile yet, so its TOML loader can fill this struct later.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace kyso::remote {

/// One person who may sign on the appliance.
struct ApplianceUser {
  std::string name;
  std::string password_hash;  ///< hash_password() output; empty: no HTTP Basic login
  std::string totp_secret;    ///< base32 (as authenticator apps show it); empty: no OTP asked
  std::vector<std::string> credentials;  ///< credential ids (certificate SHA-256, lower-case hex)
};

/// An OAuth2 client (client credentials grant) acting for one user, e.g. a school's server.
struct OAuthClient {
  std::string client_id;
  std::string secret_hash;  ///< hash_password() output
  std::string user;         ///< the ApplianceUser it acts for
};

struct ApplianceLimits {
  std::size_t max_body_bytes = 1024UL * 1024;  ///< larger requests get 413
  std::size_t multisign = 100;                 ///< hashes per authorization
  std::size_t max_failures = 5;                ///< wrong passwords / PINs / OTPs before the lock
  std::chrono::seconds lockout{15 * 60};
  std::chrono::seconds token_ttl{60 * 60};        ///< bearer tokens
  std::chrono::seconds sad_ttl{5 * 60};           ///< one SAD
  std::chrono::seconds transaction_ttl{30 * 60};  ///< an authorization and its extensions
  std::size_t transaction_signatures = 10000;     ///< hashes one PIN + OTP may cover in all
  unsigned totp_window = 1;                       ///< time steps accepted either side of now
  std::chrono::seconds request_timeout{30};
  std::chrono::seconds idle_timeout{30};  ///< keep-alive connections
  std::size_t max_connections = 512;      ///< further connections are closed at once
  unsigned io_threads = 2;
  unsigned workers = 4;       ///< request handling (password hashing, SQLite, waiting for signs)
  unsigned sign_threads = 2;  ///< concurrent HSM sessions signing
};

struct ApplianceConfig {
  std::string name = "Kyso appliance";
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 8443;  ///< 0: any free port (see Appliance::port())
  std::string tls_cert_file;  ///< PEM chain, leaf first
  std::string tls_key_file;
  std::vector<std::string> pkcs11_modules;  ///< the HSM's PKCS#11 module(s)
  std::filesystem::path state_db;           ///< SQLite file (":memory:" for throw-away state)
  std::vector<ApplianceUser> users;
  std::vector<OAuthClient> clients;
  ApplianceLimits limits;
};

/// Reads the JSON configuration file. Throws Error(ConfigInvalid) naming the bad key.
ApplianceConfig load_appliance_config(const std::filesystem::path& file);

class StateStore;

class Appliance {
 public:
  /// Loads the PKCS#11 modules, finds the configured credentials and opens the state database.
  /// Throws Error(ConfigInvalid / CredentialNotFound / ...).
  explicit Appliance(ApplianceConfig config);
  ~Appliance();
  Appliance(const Appliance&) = delete;
  Appliance& operator=(const Appliance&) = delete;
  Appliance(Appliance&&) = delete;
  Appliance& operator=(Appliance&&) = delete;

  /// Binds, listens and starts the io threads; returns at once.
  void start();
  /// Stops accepting, closes connections and joins every thread. Idempotent.
  void stop() noexcept;
  /// Blocks until stop() is called from elsewhere (a signal handler's thread).
  void wait();
  /// The bound port (useful with port 0).
  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] StateStore& store() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyso::remote
