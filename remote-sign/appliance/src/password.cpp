// Password hashes with scrypt (OpenSSL's EVP_PBE_scrypt) and TOTP with liboath.
#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <mutex>

#include "kyso/appliance/security.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"

namespace kyso::appliance {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kKeyBytes = 32;

struct ScryptParams {
  unsigned log2_n = 15;
  unsigned r = 8;
  unsigned p = 1;
};

bool scrypt(const Secret& password, std::span<const std::uint8_t> salt, ScryptParams p,
            std::span<std::uint8_t> out) {
  if (p.log2_n < 10 || p.log2_n > 20 || p.r == 0 || p.r > 32 || p.p == 0 || p.p > 16) return false;
  const std::uint64_t n = std::uint64_t{1} << p.log2_n;
  const std::uint64_t maxmem = 128 * n * p.r * p.p + (std::uint64_t{1} << 20) * 8;
  return EVP_PBE_scrypt(reinterpret_cast<const char*>(password.data()), password.size(),
                        salt.data(), salt.size(), n, p.r, p.p, maxmem, out.data(), out.size()) == 1;
}

std::optional<unsigned> parse_uint(std::string_view s) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "$scrypt$ln=15,r=8,p=1$salt$key": the parameters, and `rest` set to "salt$key".
std::optional<ScryptParams> parse_scrypt(std::string_view hash, std::string_view& rest) {
  constexpr std::string_view kPrefix = "$scrypt$ln=";
  if (!hash.starts_with(kPrefix)) return std::nullopt;
  hash.remove_prefix(kPrefix.size());
  const auto d1 = hash.find('$');
  if (d1 == std::string_view::npos) return std::nullopt;
  const std::string_view params = hash.substr(0, d1);
  rest = hash.substr(d1 + 1);
  const auto c1 = params.find(",r=");
  const auto c2 = params.find(",p=");
  if (c1 == std::string_view::npos || c2 == std::string_view::npos || c2 < c1) return std::nullopt;
  const auto ln = parse_uint(params.substr(0, c1));
  const auto r = parse_uint(params.substr(c1 + 3, c2 - c1 - 3));
  const auto p = parse_uint(params.substr(c2 + 3));
  if (!ln || !r || !p) return std::nullopt;
  return ScryptParams{*ln, *r, *p};
}

std::string hash_with(const Secret& password, ScryptParams p) {
  std::array<std::uint8_t, kSaltBytes> salt{};
  random_bytes(salt);
  std::array<std::uint8_t, kKeyBytes> key{};
  if (!scrypt(password, salt, p, key)) throw Error(ErrorCode::Internal, "scrypt failed");
  return "$scrypt$ln=" + std::to_string(p.log2_n) + ",r=" + std::to_string(p.r) +
         ",p=" + std::to_string(p.p) + "$" + to_base64(salt) + "$" + to_base64(key);
}

}  // namespace

std::string hash_password(const Secret& password, unsigned log2_n) {
  return hash_with(password, {log2_n, 8, 1});
}

std::string hash_password_like(const Secret& password, std::string_view like) {
  std::string_view rest;
  const auto p = parse_scrypt(like, rest);
  // A hash the configuration loader would refuse: the default parameters.
  return hash_with(password, p && p->log2_n >= 10 && p->log2_n <= 20 && p->r >= 1 && p->r <= 32 &&
                                     p->p >= 1 && p->p <= 16
                                 ? *p
                                 : ScryptParams{});
}

bool verify_password(const Secret& password, std::string_view hash) {
  std::string_view rest;
  const auto params = parse_scrypt(hash, rest);
  if (!params) return false;
  const auto d2 = rest.find('$');
  if (d2 == std::string_view::npos) return false;
  Bytes salt;
  Bytes expected;
  try {
    salt = from_base64(rest.substr(0, d2));
    expected = from_base64(rest.substr(d2 + 1));
  } catch (const Error&) {
    return false;
  }
  if (expected.size() != kKeyBytes || salt.empty()) return false;
  std::array<std::uint8_t, kKeyBytes> key{};
  if (!scrypt(password, salt, *params, key)) return false;
  const bool ok = CRYPTO_memcmp(key.data(), expected.data(), key.size()) == 0;
  OPENSSL_cleanse(key.data(), key.size());
  return ok;
}

namespace {

void oath_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (oath_init() != OATH_OK) throw Error(ErrorCode::Internal, "liboath failed to initialize");
  });
}

// The raw TOTP key, wiped when it goes.
struct OathKey {
  char* data = nullptr;
  std::size_t size = 0;
  OathKey() = default;
  OathKey(const OathKey&) = delete;
  OathKey& operator=(const OathKey&) = delete;
  OathKey(OathKey&&) = delete;
  OathKey& operator=(OathKey&&) = delete;
  ~OathKey() {
    if (data != nullptr) {
      OPENSSL_cleanse(data, size);
      free(data);  // NOLINT(cppcoreguidelines-no-malloc): liboath allocates with malloc
    }
  }
};

void decode_secret(std::string_view base32, OathKey& key) {
  oath_once();
  // liboath's base32 decoder wants upper case without blanks; authenticator apps show groups.
  std::string clean;
  for (char c : base32) {
    if (c == ' ' || c == '-') continue;
    clean += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  if (clean.empty() ||
      oath_base32_decode(clean.data(), clean.size(), &key.data, &key.size) != OATH_OK) {
    throw Error(ErrorCode::ConfigInvalid, "TOTP secret is not base32");
  }
}

}  // namespace

std::string totp_generate(std::string_view base32_secret, std::time_t now) {
  OathKey key;
  decode_secret(base32_secret, key);
  std::array<char, 16> otp{};
  if (oath_totp_generate(key.data, key.size, now, OATH_TOTP_DEFAULT_TIME_STEP_SIZE,
                         OATH_TOTP_DEFAULT_START_TIME, 6, otp.data()) != OATH_OK) {
    throw Error(ErrorCode::Internal, "oath_totp_generate failed");
  }
  return otp.data();
}

std::optional<std::uint64_t> totp_match(std::string_view base32_secret, const Secret& otp,
                                        std::time_t now, unsigned window) {
  if (otp.size() != 6) return std::nullopt;
  for (std::size_t i = 0; i < otp.size(); ++i) {
    if (otp.data()[i] < '0' || otp.data()[i] > '9') return std::nullopt;
  }
  std::array<char, 8> text{};  // liboath wants a NUL-terminated OTP
  std::copy_n(otp.data(), otp.size(), text.begin());
  OathKey key;
  decode_secret(base32_secret, key);
  int pos = 0;
  std::uint64_t counter = 0;
  const int rc =
      oath_totp_validate3(key.data, key.size, now, OATH_TOTP_DEFAULT_TIME_STEP_SIZE,
                          OATH_TOTP_DEFAULT_START_TIME, window, &pos, &counter, text.data());
  OPENSSL_cleanse(text.data(), text.size());
  if (rc < 0) return std::nullopt;
  return counter;
}

}  // namespace kyso::appliance
