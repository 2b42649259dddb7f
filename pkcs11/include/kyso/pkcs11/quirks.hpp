#pragma once
/// @file
/// What some token models and firmware versions are known to do wrong, and how the token layer
/// works around it. IT describes them in the token profiles (tokens.toml, `[[token.quirks]]`);
/// the layer matches each token by what it reports over PKCS#11 (CK_TOKEN_INFO) and applies
/// the first matching entry. `kyso tokens` and `kyso doctor` show what was applied.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/error.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::pkcs11 {

/// A firmware (or hardware) version as CK_VERSION has it.
struct Version {
  int major = 0;
  int minor = 0;
  friend auto operator<=>(const Version&, const Version&) = default;
};

/// Key families for `avoid` and `prefer`.
enum class KeyFamily { Rsa, RsaPss, Ecdsa };
std::optional<KeyFamily> parse_key_family(std::string_view name) noexcept;  ///< rsa|rsa-pss|ecdsa
std::string_view to_string(KeyFamily f) noexcept;
KeyFamily family_of(SignAlgorithm alg) noexcept;

struct TokenQuirks {
  /// Where the entry comes from (the profile's vendor and model), for messages.
  std::string profile;
  // Which tokens: substrings of CK_TOKEN_INFO's manufacturerID and model (empty: any), and an
  // inclusive firmware range (absent: any).
  std::string manufacturer;
  std::string model;
  std::optional<Version> firmware_min;
  std::optional<Version> firmware_max;

  /// Signature families the token fails with (e.g. RSA on ePass2003 units made since late
  /// 2023 under OpenSC): not offered for its keys, so a request asking for one is refused
  /// with ALGORITHM_UNSUPPORTED before any dialog instead of failing on the token.
  std::vector<KeyFamily> avoid;
  /// Families in order of preference: the token's credentials whose key fits the first are
  /// listed first (a role with an RSA and an EC key on one token picks EC).
  std::vector<KeyFamily> prefer;
  /// false: closing a session can end the login (some middleware logs out with the last
  /// session). Kyso holds a session open for the whole login either way; this says it must.
  bool login_survives_session_close = true;
  /// true: the module fails after the token is plugged in again (CKR_FUNCTION_FAILED until
  /// re-initialized, seen with some SafeNet middleware): when a token comes back, Kyso
  /// finalizes and re-initializes its module before using it.
  bool reinitialize_after_hotplug = false;
  /// true: a key that needs the PIN before each signature (CKA_ALWAYS_AUTHENTICATE, e.g. PIV
  /// slot 9C, qualified-signature cards) has the user type it for each signature (IT's policy
  /// for such cards), instead of Kyso keeping the PIN typed at the approval for the batch.
  bool pin_per_signature = false;
  std::string note;  ///< why, in a few words (shown by doctor)

  [[nodiscard]] bool matches(std::string_view token_manufacturer, std::string_view token_model,
                             Version firmware) const;
};

void to_json(nlohmann::json& j, const TokenQuirks& q);

/// What Kyso does differently for such a token, in one sentence (for `kyso tokens`, doctor).
std::string describe(const TokenQuirks& q, Language lang);

}  // namespace kyso::pkcs11
