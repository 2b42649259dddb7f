#pragma once
/// @file
/// Token profiles (tokens.toml, see docs/configuration.md): which USB tokens Kyso knows by
/// VID:PID, the PKCS#11 modules that drive them per OS, their PIN policy and the key algorithms
/// they can generate. The Vietnamese table (profiles/tokens.toml) is compiled in as the default.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/admin.hpp"
#include "kyso/pkcs11/quirks.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::firmware_config {

enum class PinCharset { Any, Digits, Alphanumeric };

struct PinPolicy {
  std::size_t min_length = 4;
  std::size_t max_length = 16;
  PinCharset charset = PinCharset::Any;
  /// Throws Error(PinInvalid) saying what is wrong (never what the PIN is).
  void check(const Secret& pin) const;
};

struct TokenProfile {
  pkcs11::KnownToken token;  ///< VID:PID, vendor, model, modules per OS, package
  PinPolicy pin;
  std::vector<pkcs11::KeyAlgorithm> algorithms;
  /// What some of this model's firmware does wrong and how Kyso works around it
  /// (`[[token.quirks]]`); matched per token by what it reports over PKCS#11.
  std::vector<pkcs11::TokenQuirks> quirks;
};

/// Loads and validates a profiles file. Throws ConfigError (file, line, key).
std::vector<TokenProfile> load_token_profiles(const std::filesystem::path& file);
/// Parses profiles from text; `name` stands for the file in messages.
std::vector<TokenProfile> parse_token_profiles(std::string_view toml, const std::string& name);
/// The compiled-in default profile (profiles/tokens.toml).
const std::vector<TokenProfile>& default_token_profiles();
/// The profiles as the token layer's table (for diagnose_usb, UsbWatcher, ModuleConfig).
std::vector<pkcs11::KnownToken> to_known_tokens(const std::vector<TokenProfile>& profiles);
/// Every profile's quirks, in file order, as the token layer's table (ModuleConfig::quirks).
std::vector<pkcs11::TokenQuirks> to_token_quirks(const std::vector<TokenProfile>& profiles);
/// The profile for a USB device, or nullptr.
const TokenProfile* find_profile(const std::vector<TokenProfile>& profiles, std::uint16_t vendor_id,
                                 std::uint16_t product_id);

}  // namespace kyso::firmware_config
