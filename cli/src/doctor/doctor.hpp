#pragma once
// `kyso doctor`'s checks: what stands between this PC and signing, explained in Vietnamese and
// English. One file per family: tokens.cpp (USB tokens vs. modules, module loads, PIN state,
// expiring certificates), agent.cpp (configuration, port, documents module), tls.cpp (the
// local wss CA's trust), browsers.cpp (Local Network Access policy per browser), network.cpp (the
// clock against the TSA, remote signing services).

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/firmware_config/token_profiles.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::cli::doctor {

enum class Status { Ok, Warn, Fail, Skip };
std::string_view to_string(Status s) noexcept;  ///< "ok", "warn", "fail", "skip"

struct Check {
  /// "config", "usb", "module", "token", "quirk", "certificate", "tls", "browser", "agent",
  /// "documents", "tsa", "remote", "verifyd"
  std::string id;
  Status status = Status::Ok;
  std::string vi;  ///< what it means and what to do, in Vietnamese
  std::string en;  ///< the same in English
  nlohmann::json details = nlohmann::json::object();  ///< machine-readable facts
};
using Checks = std::vector<Check>;

struct Options {
  std::string usb_inventory;  ///< lsusb output or VID:PID lines instead of scanning USB
  std::string profiles;       ///< tokens.toml instead of the built-in table
  std::string config;         ///< agent configuration to validate (and take the port from)
  int expiry_days = 30;       ///< warn about certificates expiring sooner
  /// The installer's `kyso-local-tls` (asked `status --json` about the wss CA's trust in the
  /// system and NSS stores); empty: looked for in /usr/sbin, /usr/local/sbin. Not found: skipped.
  std::string local_tls;
  /// Warn when this PC's clock and the configured TSA's (the agent configuration's tsa_url)
  /// differ by more than this.
  std::chrono::seconds max_clock_skew{60};
  /// kyso-verifyd's profile to check (and the service on its port); empty: none.
  std::string verifyd_config;
  /// Per network check (the TSA, each remote signing service).
  std::chrono::seconds network_timeout{10};
  /// Where browsers and their managed-policy directories are looked for ("/": this machine).
  std::string root = "/";
};

/// Runs every check. Never throws for what it finds: problems are checks with Fail/Warn.
/// Throws only when its own inputs are unusable (unreadable inventory, invalid profiles).
Checks run(pkcs11::Library& lib, const Options& options);

// The families, each appending its checks to `out`.

/// Reads a USB inventory: the first vvvv:pppp on each line (`lsusb` output works as is).
std::vector<pkcs11::UsbDevice> read_usb_inventory(const std::string& file);
void check_usb(Checks& out, const Options& o,
               const std::vector<firmware_config::TokenProfile>& profiles);
void check_modules(Checks& out, pkcs11::Library& lib);
void check_tokens_and_certificates(Checks& out, pkcs11::Library& lib, int expiry_days);

/// The agent configuration named by the options, if any and valid.
std::optional<firmware_config::AgentConfig> check_config(Checks& out, const Options& o);
void check_documents_module(Checks& out, const std::optional<firmware_config::AgentConfig>& agent);
void check_agent_port(Checks& out, std::uint16_t port, bool tls);

void check_local_tls(Checks& out, const Options& o);

/// Per installed Chromium-family browser: whether its managed policy lets every allow-listed
/// origin reach the agent (Local Network Access).
void check_browser_policy(Checks& out, const std::optional<firmware_config::AgentConfig>& agent,
                          const Options& o);

/// What the program on `host`:`port` answers to `GET path` with 200, when it is a JSON object,
/// over TLS when `tls` (a public status only: the certificate is not verified here, its trust is
/// the tls check's business). nullopt with `why` when no such answer within 3 s.
std::optional<nlohmann::json> probe_json(const std::string& host, std::uint16_t port, bool tls,
                                         const std::string& path, std::string& why);

/// The verification service on this server (kyso-verifyd), when Options::verifyd_config names
/// its profile: the profile loads, its trust anchors are within their validity, and the service
/// answers on its port (with its seal ready when one is configured).
void check_verifyd(Checks& out, const Options& o);

void check_tsa(Checks& out, const std::optional<firmware_config::AgentConfig>& agent,
               const Options& o);
void check_remote(Checks& out, const std::optional<firmware_config::AgentConfig>& agent,
                  const Options& o);

}  // namespace kyso::cli::doctor
