#pragma once
/// @file
/// The signing appliance's configuration (kyso-appliance.toml, see docs/configuration.md): a
/// CSC v2 server that keeps signing keys in an HSM and signs after the user's PIN and a second
/// factor. This is the one configuration type of kyso-appliance: load_appliance_config() fills
/// it from TOML (every mistake reported with file, line and key) and kyso::appliance::Appliance
/// runs on it; tests and benchmarks may also fill it in code.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kyso::firmware_config {

/// One person who may sign on the appliance.
struct ApplianceUser {
  std::string name;
  std::string password_hash;  ///< `kyso-appliance hash-password` output; empty: no HTTP Basic login
  std::string totp_secret;    ///< base32 (as authenticator apps show it); empty: no OTP asked
  std::vector<std::string> credentials;  ///< credential ids (certificate SHA-256, lower-case hex)
};

/// An OAuth2 client (client credentials grant) acting for one user, e.g. a school's server.
struct OAuthClient {
  std::string client_id;
  std::string secret_hash;  ///< `kyso-appliance hash-password` output
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
  std::uint16_t port = 8443;  ///< 0: any free port (see Appliance::port(), --port-file)
  std::string tls_cert_file;  ///< PEM chain, leaf first
  std::string tls_key_file;
  std::vector<std::string> pkcs11_modules;  ///< the HSM's PKCS#11 module(s)
  /// The HSM token (partition) whose credentials are served, by label or by slot id; neither:
  /// every token of the module(s) (tests). The TOML file must name exactly one.
  std::string hsm_token_label;
  std::optional<unsigned long> hsm_slot;
  std::filesystem::path state_db;  ///< SQLite file (":memory:" for throw-away state)
  std::vector<ApplianceUser> users;
  std::vector<OAuthClient> clients;
  ApplianceLimits limits;
};

/// Loads and validates kyso-appliance.toml. Relative paths are taken from the file's directory;
/// TOTP secrets are read from their files and credentials named in the file are resolved to
/// their certificate's SHA-256. Throws ConfigError (an Error(ConfigInvalid)) whose detail reads
/// "<file>:<line>:<column>: <key>: <what is wrong>".
ApplianceConfig load_appliance_config(const std::filesystem::path& file);

}  // namespace kyso::firmware_config
