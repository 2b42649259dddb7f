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
/// The configuration is kyso::firmware_config::ApplianceConfig (firmware-config), loaded from
/// kyso-appliance.toml by kyso::firmware_config::load_appliance_config() (docs/configuration.md).

#include <cstdint>
#include <memory>

#include "kyso/firmware_config/appliance_config.hpp"

namespace kyso::appliance {

using ApplianceConfig = firmware_config::ApplianceConfig;
using ApplianceUser = firmware_config::ApplianceUser;
using ApplianceLimits = firmware_config::ApplianceLimits;
using OAuthClient = firmware_config::OAuthClient;

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
  /// HTTP requests answered so far (each is one round trip of some client).
  [[nodiscard]] std::uint64_t requests() const noexcept;
  /// Seconds the HSM sessions have spent in signHash's signing, summed over the sessions
  /// (benchmarks divide it by sessions x wall time: how busy the HSM was kept).
  [[nodiscard]] double signing_seconds() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyso::appliance
