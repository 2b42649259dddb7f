#include "kyso/firmware_config/appliance_config.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/text.hpp"
#include "toml_reader.hpp"

namespace kyso::firmware_config {
namespace {

using detail::check_private;
using detail::Section;

void read_listen(Section& s, ApplianceConfig& c) {
  detail::read_listen(s, "listen", c.listen_address, c.port);
}

std::string read_text(Section& s, std::string_view key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) s.fail(key, "cannot read " + path, "không đọc được " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A base32 TOTP secret (RFC 4648 alphabet, as authenticator apps show it; spaces and padding
// allowed), at least 128 bits as RFC 4226 asks. Returned upper-case without spaces.
std::string read_totp_secret(Section& s, std::string_view key, const std::string& path) {
  std::string text = read_text(s, key, path);
  std::string secret;
  for (const char ch : text) {
    if (std::isspace(static_cast<unsigned char>(ch)) != 0 || ch == '=') continue;
    const char up = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (!((up >= 'A' && up <= 'Z') || (up >= '2' && up <= '7'))) {
      OPENSSL_cleanse(text.data(), text.size());
      OPENSSL_cleanse(secret.data(), secret.size());
      s.fail(key, path + " does not hold a base32 secret (letters A-Z and digits 2-7)",
             path + " không chứa khóa bí mật base32 (chữ A-Z và số 2-7)");
    }
    secret.push_back(up);
  }
  OPENSSL_cleanse(text.data(), text.size());
  if (secret.size() * 5 < 128) {
    OPENSSL_cleanse(secret.data(), secret.size());
    s.fail(key, path + " holds a secret shorter than 128 bits (26 base32 characters)",
           path + " chứa khóa bí mật ngắn hơn 128 bit (26 ký tự base32)");
  }
  return secret;
}

// What `kyso-appliance hash-password` prints: $scrypt$ln=N,r=R,p=P$salt$key.
void check_hash(Section& s, std::string_view key, const std::string& hash) {
  if (!hash.starts_with("$scrypt$ln=") || std::ranges::count(hash, '$') != 4) {
    s.fail(key,
           "must be a hash made by `kyso-appliance hash-password` ($scrypt$ln=...), never "
           "the password itself",
           "phải là mã băm tạo bởi `kyso-appliance hash-password` ($scrypt$ln=...), không bao giờ "
           "ghi mật khẩu");
  }
}

// The credential id Kyso uses everywhere: SHA-256 of the DER certificate, lower-case hex.
std::string certificate_id(Section& s, std::string_view key, const std::string& path) {
  try {
    const auto certs = x509_read_file(path);
    if (certs.empty()) throw Error(ErrorCode::CertInvalid, "no certificate");
    return to_hex(sha256(x509_to_der(certs.front().get())));
  } catch (const Error&) {
    s.fail(key, path + " is not a certificate (PEM or DER)",
           path + " không phải là chứng thư số (PEM hoặc DER)");
  }
}

std::string read_sha256(Section& s, std::string_view key) {
  const std::string v = ascii_lower(s.required_string(key));
  if (v.size() != 64 || !std::ranges::all_of(v, [](char ch) {
        return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
      })) {
    s.fail(key, "must be 64 hex digits: openssl x509 -in CERT -outform DER | sha256sum",
           "phải là 64 chữ số hex: openssl x509 -in CERT -outform DER | sha256sum");
  }
  return v;
}

void read_limits(Section& l, ApplianceLimits& L) {
  auto size = [&](std::string_view key, std::size_t& out, std::int64_t min, std::int64_t max) {
    if (auto v = l.integer(key, min, max)) out = static_cast<std::size_t>(*v);
  };
  auto count = [&](std::string_view key, unsigned& out, std::int64_t min, std::int64_t max) {
    if (auto v = l.integer(key, min, max)) out = static_cast<unsigned>(*v);
  };
  auto seconds = [&](std::string_view key, std::chrono::seconds& out, std::int64_t min,
                     std::int64_t max) {
    if (auto v = l.integer(key, min, max)) out = std::chrono::seconds(*v);
  };
  size("max_body_bytes", L.max_body_bytes, 1024, 256LL * 1024 * 1024);
  size("multisign", L.multisign, 1, 100000);
  size("max_failures", L.max_failures, 1, 100);
  seconds("lockout_seconds", L.lockout, 1, 7LL * 24 * 3600);
  seconds("token_ttl_seconds", L.token_ttl, 10, 24LL * 3600);
  seconds("sad_ttl_seconds", L.sad_ttl, 1, 3600);
  seconds("transaction_ttl_seconds", L.transaction_ttl, 1, 24LL * 3600);
  size("transaction_signatures", L.transaction_signatures, 1, 10000000);
  count("totp_window", L.totp_window, 0, 10);
  seconds("request_timeout_seconds", L.request_timeout, 1, 3600);
  seconds("idle_timeout_seconds", L.idle_timeout, 1, 3600);
  size("max_connections", L.max_connections, 1, 100000);
  count("io_threads", L.io_threads, 1, 256);
  count("workers", L.workers, 1, 1024);
  count("sign_threads", L.sign_threads, 1, 256);
  l.finish();
}

}  // namespace

ApplianceConfig load_appliance_config(const std::filesystem::path& file) {
  const toml::table root_table = detail::parse_toml_file(file);
  Section root(file.string(), root_table, "");
  ApplianceConfig c;
  c.state_db = "/var/lib/kyso-appliance/state.db";

  auto server = root.table("server");
  if (!server) root.fail("server", "section [server] is required", "thiếu mục [server]");
  c.name = server->string_or("name", c.name);
  read_listen(*server, c);
  const std::string db_name = server->string("state_db").value_or("");
  if (db_name == ":memory:" || db_name.starts_with("postgresql:") ||
      db_name.starts_with("postgres://")) {
    c.state_db = db_name;  // throw-away state, or a PostgreSQL URL shared by several nodes
  } else if (auto db = server->file_path("state_db", false)) {
    c.state_db = *db;
  }
  server->finish();

  auto tls = root.table("tls");
  if (!tls) {
    root.fail("tls", "section [tls] is required: the appliance only speaks HTTPS",
              "thiếu mục [tls]: máy ký chỉ dùng HTTPS");
  }
  c.tls_cert_file = tls->file_path("cert", true).value_or("");
  if (c.tls_cert_file.empty()) tls->fail("cert", "is required", "bắt buộc phải có");
  c.tls_key_file = tls->file_path("key", true).value_or("");
  if (c.tls_key_file.empty()) tls->fail("key", "is required", "bắt buộc phải có");
  check_private(*tls, "key", c.tls_key_file);
  tls->finish();

  auto hsm = root.table("hsm");
  if (!hsm) root.fail("hsm", "section [hsm] is required", "thiếu mục [hsm]");
  const auto module = hsm->file_path("module", true);
  if (!module) {
    hsm->fail("module", "is required (the HSM's PKCS#11 module)",
              "bắt buộc phải có (thư viện PKCS#11 của HSM)");
  }
  c.pkcs11_modules = {*module};
  if (auto slot = hsm->integer("slot", 0, 0xFFFFFFFFLL)) {
    c.hsm_slot = static_cast<unsigned long>(*slot);
  }
  c.hsm_token_label = hsm->string_or("token_label", "");
  if (c.hsm_slot.has_value() == !c.hsm_token_label.empty()) {
    hsm->fail(c.hsm_slot ? "slot" : "token_label",
              "give exactly one of token_label and slot (the HSM partition to serve)",
              "ghi đúng một trong hai: token_label hoặc slot (phân vùng HSM được dùng)");
  }
  if (hsm->has("pin_file")) {
    hsm->fail("pin_file",
              "the appliance never stores the HSM PIN: each user gives their credential's PIN "
              "with every authorization and the HSM checks it; remove this key",
              "máy ký không bao giờ lưu PIN của HSM: người dùng nhập PIN của chứng thư mỗi lần "
              "phê duyệt và HSM tự kiểm tra; hãy xóa khóa này");
  }
  hsm->finish();

  // [[credentials]]: a name for each HSM credential the users of this file may sign with.
  std::map<std::string, std::string, std::less<>> credential_ids;
  for (auto& s : root.tables("credentials")) {
    const std::string id = s.required_string("id");
    if (credential_ids.contains(id)) {
      s.fail("id", "duplicate credential id " + id, "mã chứng thư bị lặp: " + id);
    }
    std::string sha;
    if (s.has("certificate") == s.has("sha256")) {
      s.fail(s.has("sha256") ? "sha256" : "certificate",
             "give exactly one of certificate (a file) and sha256 (of the DER certificate)",
             "ghi đúng một trong hai: certificate (tệp) hoặc sha256 (của chứng thư DER)");
    }
    if (s.has("certificate")) {
      sha = certificate_id(s, "certificate", *s.file_path("certificate", true));
    } else {
      sha = read_sha256(s, "sha256");
    }
    s.finish();
    credential_ids.emplace(id, sha);
  }

  for (auto& s : root.tables("users")) {
    ApplianceUser u;
    u.name = s.required_string("name");
    if (std::ranges::any_of(c.users, [&](const ApplianceUser& o) { return o.name == u.name; })) {
      s.fail("name", "duplicate user " + u.name, "người dùng bị lặp: " + u.name);
    }
    if (auto hash = s.string("password_hash")) {
      check_hash(s, "password_hash", *hash);
      u.password_hash = *hash;
    }
    const std::string factor = s.string_or("second_factor", "totp");
    if (factor != "totp" && factor != "none") {
      s.fail("second_factor", "must be \"totp\" or \"none\"", "phải là \"totp\" hoặc \"none\"");
    }
    const auto totp_file = s.file_path("totp_secret_file", true);
    if (factor == "totp") {
      if (!totp_file) {
        s.fail("totp_secret_file", "is required with second_factor = \"totp\" (the default)",
               "bắt buộc khi second_factor = \"totp\" (mặc định)");
      }
      check_private(s, "totp_secret_file", *totp_file);
      u.totp_secret = read_totp_secret(s, "totp_secret_file", *totp_file);
    } else if (totp_file) {
      s.fail("totp_secret_file", "is not used with second_factor = \"none\"",
             "không dùng khi second_factor = \"none\"");
    }
    const auto names = s.strings("credentials").value_or(std::vector<std::string>{});
    for (std::size_t i = 0; i < names.size(); ++i) {
      const auto it = credential_ids.find(names[i]);
      if (it == credential_ids.end()) {
        s.fail_at("credentials", i, "no [[credentials]] with id " + names[i],
                  "không có mục [[credentials]] nào có id " + names[i]);
      }
      u.credentials.push_back(it->second);
    }
    s.finish();
    c.users.push_back(std::move(u));
  }

  for (auto& s : root.tables("clients")) {
    OAuthClient o;
    o.client_id = s.required_string("client_id");
    if (std::ranges::any_of(c.clients,
                            [&](const OAuthClient& x) { return x.client_id == o.client_id; })) {
      s.fail("client_id", "duplicate client " + o.client_id, "client bị lặp: " + o.client_id);
    }
    o.secret_hash = s.required_string("secret_hash");
    check_hash(s, "secret_hash", o.secret_hash);
    o.user = s.required_string("user");
    if (std::ranges::none_of(c.users, [&](const ApplianceUser& u) { return u.name == o.user; })) {
      s.fail("user", "no [[users]] named " + o.user, "không có mục [[users]] nào tên là " + o.user);
    }
    s.finish();
    c.clients.push_back(std::move(o));
  }

  if (auto l = root.table("limits")) read_limits(*l, c.limits);
  root.finish();
  return c;
}

}  // namespace kyso::firmware_config
