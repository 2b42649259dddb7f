#pragma once
/// @file
/// `kyso doctor`'s checks, for the CLI and anything else that explains a PC's state to a person
/// (the agent's tray, support tools): USB tokens vs. installed modules, module load failures,
/// PIN state per token, certificates about to expire, the agent's configuration and port, the
/// local wss CA's trust, the clock against the configured TSA and the remote signing services.

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/firmware_config/token_profiles.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::firmware_config {

enum class CheckStatus { Ok, Warn, Fail, Skip };
std::string_view to_string(CheckStatus s) noexcept;  ///< "ok", "warn", "fail", "skip"

struct DoctorCheck {
  /// "config", "usb", "module", "token", "certificate", "tls", "agent", "documents", "tsa",
  /// "remote"
  std::string id;
  CheckStatus status = CheckStatus::Ok;
  std::string vi;  ///< what it means and what to do, in Vietnamese
  std::string en;  ///< the same in English
  nlohmann::json details = nlohmann::json::object();  ///< machine-readable facts
};

struct DoctorOptions {
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
  /// Per network check (the TSA, each remote signing service).
  std::chrono::seconds network_timeout{10};
};

/// Runs every check. Never throws for what it finds: problems are checks with Fail/Warn.
/// Throws only when its own inputs are unusable (unreadable inventory, invalid profiles).
std::vector<DoctorCheck> run_doctor(pkcs11::Library& lib, const DoctorOptions& options);

/// Reads a USB inventory: the first vvvv:pppp on each line (`lsusb` output works as is).
std::vector<pkcs11::UsbDevice> read_usb_inventory(const std::string& file);

}  // namespace kyso::firmware_config
