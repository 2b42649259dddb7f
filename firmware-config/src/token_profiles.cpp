#include "kyso/firmware_config/token_profiles.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "toml_reader.hpp"

namespace kyso::firmware_config {
namespace detail {
extern const std::string_view kDefaultTokensToml;
}
namespace {

using detail::Section;

bool parse_usb_id(const std::string& s, std::uint16_t& vid, std::uint16_t& pid) {
  if (s.size() != 9 || s[4] != ':') return false;
  auto hex16 = [](std::string_view h, std::uint16_t& out) {
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), v, 16);
    out = static_cast<std::uint16_t>(v);
    return ec == std::errc{} && p == h.data() + h.size();
  };
  return hex16(std::string_view(s).substr(0, 4), vid) && hex16(std::string_view(s).substr(5), pid);
}

std::optional<pkcs11::Version> parse_version(const std::string& s) {
  const auto dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == s.size()) return std::nullopt;
  pkcs11::Version v;
  const auto [p1, e1] = std::from_chars(s.data(), s.data() + dot, v.major);
  const auto [p2, e2] = std::from_chars(s.data() + dot + 1, s.data() + s.size(), v.minor);
  if (e1 != std::errc{} || e2 != std::errc{} || p1 != s.data() + dot || p2 != s.data() + s.size() ||
      v.major < 0 || v.major > 255 || v.minor < 0 || v.minor > 255) {
    return std::nullopt;
  }
  return v;
}

pkcs11::TokenQuirks read_quirks(Section& q, const TokenProfile& p) {
  pkcs11::TokenQuirks out;
  out.profile = p.token.vendor + " " + p.token.model;
  out.manufacturer = q.string_or("manufacturer", "");
  out.model = q.string_or("model", "");
  for (const char* key : {"firmware_min", "firmware_max"}) {
    if (auto v = q.string(key)) {
      auto parsed = parse_version(*v);
      if (!parsed) {
        q.fail(key, "must be a version \"MAJOR.MINOR\", e.g. \"2.1\"",
               "phải là phiên bản \"MAJOR.MINOR\", ví dụ \"2.1\"");
      }
      (std::string_view(key) == "firmware_min" ? out.firmware_min : out.firmware_max) = parsed;
    }
  }
  for (const char* key : {"avoid", "prefer"}) {
    if (auto names = q.strings(key)) {
      for (std::size_t i = 0; i < names->size(); ++i) {
        auto f = pkcs11::parse_key_family((*names)[i]);
        if (!f) q.fail_at(key, i, "use rsa, rsa-pss or ecdsa", "dùng rsa, rsa-pss hoặc ecdsa");
        (std::string_view(key) == "avoid" ? out.avoid : out.prefer).push_back(*f);
      }
    }
  }
  out.login_survives_session_close = q.boolean("login_survives_session_close").value_or(true);
  out.reinitialize_after_hotplug = q.boolean("reinitialize_after_hotplug").value_or(false);
  out.pin_per_signature = q.boolean("pin_per_signature").value_or(false);
  out.note = q.string_or("note", "");
  q.finish();
  return out;
}

std::vector<TokenProfile> read_profiles(const toml::table& root_table, const std::string& name) {
  Section root(name, root_table, "");
  if (auto schema = root.integer("schema", 1, 1); !schema) {
    root.fail("schema", "is required (schema = 1)", "bắt buộc phải có (schema = 1)");
  }
  std::vector<TokenProfile> out;
  for (auto& t : root.tables("token")) {
    TokenProfile p;
    p.token.vendor = t.required_string("vendor");
    p.token.model = t.required_string("model");
    const std::string usb = t.required_string("usb");
    if (!parse_usb_id(usb, p.token.vendor_id, p.token.product_id)) {
      t.fail("usb", "must be \"VID:PID\" in hex, e.g. \"096e:0807\"",
             "phải có dạng \"VID:PID\" hệ hex, ví dụ \"096e:0807\"");
    }
    for (const auto& other : out) {
      if (other.token.vendor_id == p.token.vendor_id &&
          other.token.product_id == p.token.product_id) {
        t.fail("usb", usb + " is already the " + other.token.model,
               usb + " đã dùng cho " + other.token.model);
      }
    }
    p.token.linux_package = t.string_or("package", "");
    if (auto algs = t.strings("algorithms")) {
      for (std::size_t i = 0; i < algs->size(); ++i) {
        auto a = pkcs11::parse_key_algorithm((*algs)[i]);
        if (!a)
          t.fail_at("algorithms", i, "use rsa2048, rsa3072 or ec-p256",
                    "dùng rsa2048, rsa3072 hoặc ec-p256");
        p.algorithms.push_back(*a);
      }
    } else {
      p.algorithms = {pkcs11::KeyAlgorithm::Rsa2048};
    }
    auto modules = t.table("modules");
    if (!modules)
      t.fail("modules", "is required: [token.modules] with linux/windows/macos lists",
             "bắt buộc phải có mục [token.modules]");
    p.token.linux_modules = modules->strings("linux").value_or(std::vector<std::string>{});
    p.token.windows_modules = modules->strings("windows").value_or(std::vector<std::string>{});
    p.token.macos_modules = modules->strings("macos").value_or(std::vector<std::string>{});
    if (p.token.linux_modules.empty() && p.token.windows_modules.empty() &&
        p.token.macos_modules.empty()) {
      t.fail("modules", "lists no module for any OS",
             "không có thư viện PKCS#11 nào cho hệ điều hành nào");
    }
    for (std::size_t i = 0; i < p.token.linux_modules.size(); ++i) {
      if (!p.token.linux_modules[i].starts_with('/')) {
        modules->fail_at("linux", i, "Linux module paths must be absolute",
                         "đường dẫn thư viện trên Linux phải là đường dẫn tuyệt đối");
      }
    }
    modules->finish();
    if (auto pin = t.table("pin")) {
      if (auto v = pin->integer("min_length", 1, 64))
        p.pin.min_length = static_cast<std::size_t>(*v);
      if (auto v = pin->integer("max_length", 1, 255))
        p.pin.max_length = static_cast<std::size_t>(*v);
      if (p.pin.min_length > p.pin.max_length) {
        pin->fail("min_length", "is larger than max_length", "lớn hơn max_length");
      }
      if (auto cs = pin->string("charset")) {
        if (*cs == "any")
          p.pin.charset = PinCharset::Any;
        else if (*cs == "digits")
          p.pin.charset = PinCharset::Digits;
        else if (*cs == "alnum")
          p.pin.charset = PinCharset::Alphanumeric;
        else
          pin->fail("charset", "must be \"any\", \"digits\" or \"alnum\"",
                    "phải là \"any\", \"digits\" hoặc \"alnum\"");
      }
      pin->finish();
    }
    for (auto& q : t.tables("quirks")) p.quirks.push_back(read_quirks(q, p));
    t.finish();
    out.push_back(std::move(p));
  }
  root.finish();
  return out;
}

}  // namespace

void PinPolicy::check(const Secret& pin) const {
  if (pin.size() < min_length || pin.size() > max_length) {
    throw Error(ErrorCode::PinInvalid, "PIN must have " + std::to_string(min_length) + ".." +
                                           std::to_string(max_length) + " characters");
  }
  const auto v = pin.view();
  if (charset == PinCharset::Digits &&
      !std::ranges::all_of(v, [](char c) { return c >= '0' && c <= '9'; })) {
    throw Error(ErrorCode::PinInvalid, "PIN must be digits only");
  }
  if (charset == PinCharset::Alphanumeric && !std::ranges::all_of(v, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0;
      })) {
    throw Error(ErrorCode::PinInvalid, "PIN must be letters and digits only");
  }
}

std::vector<TokenProfile> parse_token_profiles(std::string_view toml, const std::string& name) {
  const toml::table t = detail::parse_toml_text(toml, name);
  return read_profiles(t, name);
}

std::vector<TokenProfile> load_token_profiles(const std::filesystem::path& file) {
  const toml::table t = detail::parse_toml_file(file);
  return read_profiles(t, file.string());
}

const std::vector<TokenProfile>& default_token_profiles() {
  static const std::vector<TokenProfile> profiles =
      parse_token_profiles(detail::kDefaultTokensToml, "<built-in tokens.toml>");
  return profiles;
}

std::vector<pkcs11::KnownToken> to_known_tokens(const std::vector<TokenProfile>& profiles) {
  std::vector<pkcs11::KnownToken> out;
  out.reserve(profiles.size());
  for (const auto& p : profiles) out.push_back(p.token);
  return out;
}

std::vector<pkcs11::TokenQuirks> to_token_quirks(const std::vector<TokenProfile>& profiles) {
  std::vector<pkcs11::TokenQuirks> out;
  for (const auto& p : profiles) out.insert(out.end(), p.quirks.begin(), p.quirks.end());
  return out;
}

const TokenProfile* find_profile(const std::vector<TokenProfile>& profiles, std::uint16_t vendor_id,
                                 std::uint16_t product_id) {
  for (const auto& p : profiles) {
    if (p.token.vendor_id == vendor_id && p.token.product_id == product_id) return &p;
  }
  return nullptr;
}

}  // namespace kyso::firmware_config
