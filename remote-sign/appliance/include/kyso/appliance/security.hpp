#pragma once
/// @file
/// Password hashes (scrypt, through OpenSSL) and TOTP (RFC 6238, through liboath) as the
/// appliance uses them; exposed for the `kyso-appliance hash-password` tool and for tests.

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "kyso/core/secret.hpp"

namespace kyso::appliance {

/// "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt base64>$<key base64>", with a fresh 16-byte salt.
std::string hash_password(const Secret& password, unsigned log2_n = 15);
/// A hash of `password` with the scrypt parameters of `like` (a hash_password() string), or the
/// defaults when `like` is malformed: what an unknown account is checked against.
std::string hash_password_like(const Secret& password, std::string_view like);
/// Constant-time check against a hash_password() string. False for a malformed hash.
bool verify_password(const Secret& password, std::string_view hash);

/// The TOTP (6 digits, 30 s steps, HMAC-SHA1, as authenticator apps and `oathtool --totp`)
/// for a base32 secret at `now`. Throws Error(ConfigInvalid) for a bad secret.
std::string totp_generate(std::string_view base32_secret, std::time_t now);
/// The time-step counter `otp` matches within +-window steps of `now`, if any.
std::optional<std::uint64_t> totp_match(std::string_view base32_secret, const Secret& otp,
                                        std::time_t now, unsigned window);

}  // namespace kyso::appliance
