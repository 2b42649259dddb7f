#pragma once
/// @file
/// The signing appliance's configuration (kyso-appliance.toml, see docs/configuration.md): a
/// server that keeps teachers' keys in an HSM and signs for them after a second factor, as a
/// remote signing service (CSC v2). Loaded by load_appliance_config(); every mistake is reported
/// with file, line and key.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kyso::config {

enum class SecondFactor { None, Totp };

struct ApplianceUser {
  std::string name;          ///< login name, e.g. "gv.nguyenthianh"
  std::string display_name;  ///< "Nguyễn Thị Ánh"
  std::string
      password_hash_file;  ///< file holding the password hash (argon2id/scrypt); never the password
  SecondFactor second_factor = SecondFactor::Totp;
  std::string totp_secret_file;          ///< required with second_factor = "totp"
  std::vector<std::string> credentials;  ///< ids of [[credentials]] this user may sign with
};

struct ApplianceCredential {
  std::string id;                       ///< CSC credentialID
  std::string key_label;                ///< CKA_LABEL of the private key in the HSM
  std::string certificate;              ///< certificate file (PEM/DER) with its chain
  std::vector<std::string> algorithms;  ///< "rsa-sha256", "rsa-pss-sha256", ...
  int scal = 2;               ///< 1: SAD for any hashes; 2: SAD bound to the listed hashes
  std::size_t multisign = 1;  ///< signatures one authorization may cover
};

struct ApplianceLimits {
  std::size_t max_sessions = 64;
  std::size_t requests_per_minute = 600;  ///< per user
  std::chrono::seconds sad_lifetime{300};
  std::chrono::seconds access_token_lifetime{3600};
  std::size_t max_hashes_per_request = 2000;
  std::size_t max_failed_logins = 5;  ///< then the user is locked until IT unlocks
};

struct ApplianceConfig {
  std::string listen_host = "0.0.0.0";
  std::uint16_t listen_port = 8443;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;  ///< optional: require client certificates issued by this CA
  std::string hsm_module;
  std::optional<unsigned long> hsm_slot;  ///< either a slot id...
  std::string hsm_token_label;            ///< ...or a token label
  std::string hsm_pin_file;               ///< mode 600, read at start
  std::vector<ApplianceUser> users;
  std::vector<ApplianceCredential> credentials;
  ApplianceLimits limits;
  std::filesystem::path state_dir = "/var/lib/kyso-appliance";
};

/// Loads and validates a TOML file. Throws ConfigError ("<file>:<line>:<col>: <key>: <what>").
ApplianceConfig load_appliance_config(const std::filesystem::path& file);

}  // namespace kyso::config
