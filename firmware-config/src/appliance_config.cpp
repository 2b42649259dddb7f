#include <sys/stat.h>

#include <algorithm>
#include <charconv>

#include "kyso/config/appliance_config.hpp"
#include "kyso/core/signer.hpp"
#include "toml_reader.hpp"

namespace kyso::config {
namespace {

using detail::Section;

// "host:port", "[::]:port" or "0.0.0.0:port".
void read_listen(Section& s, ApplianceConfig& c) {
  const auto listen = s.string("listen");
  if (!listen) return;
  const auto colon = listen->rfind(':');
  std::string host = colon == std::string::npos ? "" : listen->substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : listen->substr(colon + 1);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  int value = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || ec != std::errc{} || p != port.data() + port.size() || value < 1 ||
      value > 65535) {
    s.fail("listen",
           "must be \"host:port\" with a port 1..65535, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"",
           "phải có dạng \"địa-chỉ:cổng\" với cổng từ 1 đến 65535, ví dụ \"0.0.0.0:8443\"");
  }
  c.listen_host = host;
  c.listen_port = static_cast<std::uint16_t>(value);
}

// A secret file must not be readable by group or others.
void check_private(Section& s, std::string_view key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    s.fail(key, path + " is readable by other users: chmod 600 it",
           path + " có thể bị người dùng khác đọc: hãy chmod 600");
  }
}

}  // namespace

ApplianceConfig load_appliance_config(const std::filesystem::path& file) {
  const toml::table root_table = detail::parse_toml_file(file);
  Section root(file.string(), root_table, "");
  ApplianceConfig c;

  auto server = root.table("server");
  if (!server) root.fail("server", "section [server] is required", "thiếu mục [server]");
  read_listen(*server, c);
  if (auto dir = server->file_path("state_dir", false)) c.state_dir = *dir;
  server->finish();

  auto tls = root.table("tls");
  if (!tls)
    root.fail("tls", "section [tls] is required: the appliance only speaks HTTPS",
              "thiếu mục [tls]: máy ký chỉ dùng HTTPS");
  c.tls_cert_file = *tls->file_path("cert", true);
  c.tls_key_file = tls->file_path("key", true).value_or("");
  if (c.tls_key_file.empty()) tls->fail("key", "is required", "bắt buộc phải có");
  check_private(*tls, "key", c.tls_key_file);
  c.tls_client_ca_file = tls->file_path("client_ca", true).value_or("");
  tls->finish();

  auto hsm = root.table("hsm");
  if (!hsm) root.fail("hsm", "section [hsm] is required", "thiếu mục [hsm]");
  c.hsm_module = hsm->file_path("module", true).value_or("");
  if (c.hsm_module.empty())
    hsm->fail("module", "is required (the HSM's PKCS#11 module)",
              "bắt buộc phải có (thư viện PKCS#11 của HSM)");
  if (auto slot = hsm->integer("slot", 0, 0xFFFFFFFFLL))
    c.hsm_slot = static_cast<unsigned long>(*slot);
  c.hsm_token_label = hsm->string_or("token_label", "");
  if (c.hsm_slot.has_value() == !c.hsm_token_label.empty()) {
    hsm->fail(c.hsm_slot ? "slot" : "token_label", "give exactly one of slot and token_label",
              "chỉ ghi một trong hai: slot hoặc token_label");
  }
  c.hsm_pin_file = hsm->file_path("pin_file", true).value_or("");
  if (c.hsm_pin_file.empty())
    hsm->fail("pin_file", "is required (mode 600)", "bắt buộc phải có (quyền 600)");
  check_private(*hsm, "pin_file", c.hsm_pin_file);
  hsm->finish();

  for (auto& s : root.tables("credentials")) {
    ApplianceCredential cred;
    cred.id = s.required_string("id");
    for (const auto& other : c.credentials) {
      if (other.id == cred.id)
        s.fail("id", "duplicate credential id " + cred.id, "mã chứng thư bị lặp: " + cred.id);
    }
    cred.key_label = s.required_string("key_label");
    cred.certificate = s.file_path("certificate", true).value_or("");
    if (cred.certificate.empty()) s.fail("certificate", "is required", "bắt buộc phải có");
    cred.algorithms = s.strings("algorithms").value_or(std::vector<std::string>{"rsa-sha256"});
    for (std::size_t i = 0; i < cred.algorithms.size(); ++i) {
      if (!parse_sign_algorithm(cred.algorithms[i])) {
        s.fail_at("algorithms", i,
                  "unknown algorithm (rsa-sha256, rsa-pss-sha256, ecdsa-sha256, ...)",
                  "thuật toán không hợp lệ (rsa-sha256, rsa-pss-sha256, ecdsa-sha256, ...)");
      }
    }
    if (auto scal = s.integer("scal", 1, 2)) cred.scal = static_cast<int>(*scal);
    if (auto m = s.integer("multisign", 1, 100000)) cred.multisign = static_cast<std::size_t>(*m);
    s.finish();
    c.credentials.push_back(std::move(cred));
  }

  for (auto& s : root.tables("users")) {
    ApplianceUser u;
    u.name = s.required_string("name");
    for (const auto& other : c.users) {
      if (other.name == u.name)
        s.fail("name", "duplicate user " + u.name, "người dùng bị lặp: " + u.name);
    }
    u.display_name = s.string_or("display_name", u.name);
    u.password_hash_file = s.file_path("password_hash_file", true).value_or("");
    if (u.password_hash_file.empty())
      s.fail("password_hash_file", "is required", "bắt buộc phải có");
    check_private(s, "password_hash_file", u.password_hash_file);
    const std::string factor = s.string_or("second_factor", "totp");
    if (factor == "totp")
      u.second_factor = SecondFactor::Totp;
    else if (factor == "none")
      u.second_factor = SecondFactor::None;
    else
      s.fail("second_factor", "must be \"totp\" or \"none\"", "phải là \"totp\" hoặc \"none\"");
    u.totp_secret_file = s.file_path("totp_secret_file", true).value_or("");
    if (u.second_factor == SecondFactor::Totp) {
      if (u.totp_secret_file.empty())
        s.fail("totp_secret_file", "is required with second_factor = \"totp\"",
               "bắt buộc khi second_factor = \"totp\"");
      check_private(s, "totp_secret_file", u.totp_secret_file);
    }
    u.credentials = s.strings("credentials").value_or(std::vector<std::string>{});
    for (std::size_t i = 0; i < u.credentials.size(); ++i) {
      if (std::ranges::none_of(c.credentials, [&](const ApplianceCredential& k) {
            return k.id == u.credentials[i];
          })) {
        s.fail_at("credentials", i, "no [[credentials]] with id " + u.credentials[i],
                  "không có mục [[credentials]] nào có id " + u.credentials[i]);
      }
    }
    s.finish();
    c.users.push_back(std::move(u));
  }

  if (auto l = root.table("limits")) {
    auto size = [&](std::string_view key, std::size_t& out, std::int64_t min, std::int64_t max) {
      if (auto v = l->integer(key, min, max)) out = static_cast<std::size_t>(*v);
    };
    size("max_sessions", c.limits.max_sessions, 1, 100000);
    size("requests_per_minute", c.limits.requests_per_minute, 1, 1000000);
    size("max_hashes_per_request", c.limits.max_hashes_per_request, 1, 100000);
    size("max_failed_logins", c.limits.max_failed_logins, 1, 100);
    if (auto v = l->integer("sad_lifetime_seconds", 10, 3600))
      c.limits.sad_lifetime = std::chrono::seconds(*v);
    if (auto v = l->integer("access_token_lifetime_seconds", 60, 86400)) {
      c.limits.access_token_lifetime = std::chrono::seconds(*v);
    }
    l->finish();
  }
  root.finish();
  return c;
}

}  // namespace kyso::config
