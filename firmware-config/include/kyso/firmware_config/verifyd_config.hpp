#pragma once
/// @file
/// kyso-verifyd's profile (kyso-verifyd.toml, see docs/verifyd.md): where it listens, TLS, the
/// trust anchors and revocation sources it judges signatures with, the hosts it may fetch
/// OCSP/CRL from, its limits, and the seal credential that signs PDF reports. Stateless: several
/// instances with the same profile serve behind a load balancer.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kyso::firmware_config {

struct VerifydLimits {
  std::size_t max_document_bytes = 20UL * 1024 * 1024;  ///< larger uploads get 413
  std::chrono::seconds validation_timeout{30};          ///< one validation, else 503
  std::size_t max_concurrent = 4;                       ///< validations at once, else 503
  std::chrono::seconds request_timeout{60};             ///< receiving a request, sending an answer
  std::chrono::seconds idle_timeout{30};
  std::size_t max_connections = 512;
  unsigned io_threads = 2;
};

/// The service's own seal: a credential on a PKCS#11 token that signs the PDF reports.
struct VerifydSeal {
  std::string module;         ///< PKCS#11 module path
  std::string token_label;    ///< the token holding it
  std::string credential_id;  ///< SHA-256 of its certificate (from the profile's `certificate`)
  std::string pin_file;       ///< mode 600; empty: a token without login
  std::string algorithm = "rsa-pss-sha256";
};

struct VerifydConfig {
  std::string name = "Kyso verification service";  ///< shown on the page and in reports
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 8444;
  std::string tls_cert_file;  ///< none: plain HTTP (only behind a TLS-terminating proxy)
  std::string tls_key_file;
  std::vector<std::string> anchors;        ///< trust anchors (NEAC, VGCA roots), PEM/DER files
  std::vector<std::string> intermediates;  ///< extra issuing CAs
  std::vector<std::string> crl_files;
  bool check_revocation = true;
  std::string ocsp_url;  ///< overrides the certificates' AIA (a local OCSP proxy)
  /// The only hosts the certificates' OCSP/CRL URLs may be fetched from.
  std::vector<std::string> fetch_hosts;
  std::chrono::seconds fetch_timeout{10};
  std::filesystem::path work_dir;  ///< where uploads live while validated; empty: $TMPDIR
  VerifydLimits limits;
  std::optional<VerifydSeal> seal;  ///< none: ?report=pdf answers 501
};

/// Loads and validates kyso-verifyd.toml. Relative paths are taken from the file's directory.
/// Throws ConfigError whose detail reads "<file>:<line>:<column>: <key>: <what is wrong>".
VerifydConfig load_verifyd_config(const std::filesystem::path& file);

}  // namespace kyso::firmware_config
