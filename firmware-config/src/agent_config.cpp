#include <algorithm>
#include <cstdlib>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "toml_reader.hpp"

namespace kyso::firmware_config {
namespace {

using detail::Section;

// Empty when the OS cannot say: the agent then settles it (or fails) when it starts.
std::filesystem::path default_state_dir() {
  try {
    return platform::user_state_dir();
  } catch (const Error&) {
    return {};
  }
}

bool is_credential_id(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void read_limits(Section& s, AgentLimits& l) {
  constexpr std::int64_t kMiB = 1024 * 1024;
  auto size = [&](std::string_view key, std::size_t& out, std::int64_t min, std::int64_t max) {
    if (auto v = s.integer(key, min, max)) out = static_cast<std::size_t>(*v);
  };
  size("max_connections", l.max_connections, 1, 1024);
  size("max_message_bytes", l.max_message_bytes, 1024, 1024 * kMiB);
  size("max_frame_bytes", l.max_frame_bytes, 1024, 256 * kMiB);
  size("max_in_flight", l.max_in_flight, 1, 1024);
  size("max_batch_items", l.max_batch_items, 1, 100000);
  size("write_queue", l.write_queue, 1, 65536);
  if (auto v = s.integer("idle_timeout_seconds", 1, 86400))
    l.idle_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("approval_timeout_seconds", 5, 3600)) {
    l.approval_timeout = std::chrono::seconds(*v);
  }
  if (l.max_frame_bytes > l.max_message_bytes) {
    s.fail("max_frame_bytes", "must not exceed max_message_bytes",
           "không được lớn hơn max_message_bytes");
  }
  s.finish();
}

void read_roles(Section& roles, AgentConfig& c) {
  for (const auto& name : roles.keys()) {
    const auto role = parse_role(name);
    if (!role) {
      roles.fail(name, "unknown role (use teacher, principal or seal)",
                 "vai trò không hợp lệ (dùng teacher, principal hoặc seal)");
    }
    auto t = roles.table(name);
    RolePin pin;
    if (auto ids = t->strings("credentials")) {
      for (std::size_t i = 0; i < ids->size(); ++i) {
        if (!is_credential_id((*ids)[i])) {
          t->fail_at("credentials", i,
                     "a credential id is the certificate's SHA-256: 64 lower-case hex digits",
                     "mã chứng thư là SHA-256 của chứng thư: 64 chữ số hex viết thường");
        }
      }
      pin.credential_ids = std::move(*ids);
    }
    if (auto issuers = t->strings("issuer_contains")) pin.issuer_contains = std::move(*issuers);
    t->finish();
    c.roles[*role] = std::move(pin);
  }
}

RemoteService read_remote(Section& r) {
  RemoteService s;
  s.name = r.required_string("name");
  s.url = r.required_string("url");
  if (!detail::valid_http_url(s.url, true)) {
    r.fail("url", "must be an https:// URL of the CSC service",
           "phải là địa chỉ https:// của dịch vụ ký số từ xa");
  }
  s.username = r.string_or("username", "");
  s.ca_file = r.file_path("ca_file", true).value_or("");
  if (auto v = r.integer("unavailable_wait_seconds", 0, 600)) {
    s.unavailable_wait = std::chrono::seconds(*v);
  }
  r.finish();
  return s;
}

}  // namespace

AgentConfig load_agent_config(const std::filesystem::path& file) {
  const toml::table root_table = detail::parse_toml_file(file);
  Section root(file.string(), root_table, "");
  AgentConfig c;

  if (auto port = root.integer("port", 1024, 65535 - kAgentPortFallbacks)) {
    c.port = static_cast<std::uint16_t>(*port);
  }
  c.language = root.string_or("language", c.language);
  if (c.language != "vi" && c.language != "en") {
    root.fail("language", "must be \"vi\" or \"en\"", "phải là \"vi\" hoặc \"en\"");
  }
  c.pinentry = root.string_or("pinentry", c.pinentry);
  if (c.pinentry.empty()) root.fail("pinentry", "must not be empty", "không được để trống");
  // Not required to exist: the agent starts without it and answers FORMATS_UNAVAILABLE for
  // xml and pdf items; `kyso doctor` reports it.
  c.formats_module = root.file_path("formats_module", false).value_or("");
  if (auto dir = root.file_path("state_dir", false))
    c.state_dir = *dir;
  else
    c.state_dir = default_state_dir();

  if (auto tls = root.table("tls")) {
    c.tls = tls->boolean("enabled").value_or(true);
    c.tls_cert_file = tls->file_path("cert", c.tls).value_or("");
    c.tls_key_file = tls->file_path("key", c.tls).value_or("");
    if (c.tls && c.tls_cert_file.empty())
      tls->fail("cert", "is required when TLS is enabled", "bắt buộc khi bật TLS");
    if (c.tls && c.tls_key_file.empty())
      tls->fail("key", "is required when TLS is enabled", "bắt buộc khi bật TLS");
    // The key is this user's own (kyso-local-tls issues one per desktop user): another user who
    // could read it could answer for this user's agent on loopback.
    if (c.tls) detail::check_private(*tls, "key", c.tls_key_file);
    tls->finish();
  }

  if (auto origins = root.table("origins")) {
    if (auto allowed = origins->strings("allowed")) {
      for (std::size_t i = 0; i < allowed->size(); ++i) {
        std::string why_en, why_vi;
        auto o = detail::normalize_origin((*allowed)[i], why_en, why_vi);
        if (!o) origins->fail_at("allowed", i, why_en, why_vi);
        if (std::ranges::find(c.allowed_origins, *o) != c.allowed_origins.end()) {
          origins->fail_at("allowed", i, "duplicate origin " + *o, "địa chỉ bị lặp lại: " + *o);
        }
        c.allowed_origins.push_back(std::move(*o));
      }
    }
    origins->finish();
  }

  if (auto roles = root.table("roles")) read_roles(*roles, c);

  if (auto trust = root.table("trust")) {
    if (auto anchors = trust->file_paths("anchors", true)) c.trust_anchors = std::move(*anchors);
    trust->finish();
  }

  if (auto ts = root.table("timestamp")) {
    c.tsa_url = ts->string_or("tsa_url", "");
    if (!c.tsa_url.empty() && !detail::valid_http_url(c.tsa_url, false)) {
      ts->fail("tsa_url", "must be an http:// or https:// URL",
               "phải là địa chỉ http:// hoặc https://");
    }
    ts->finish();
  }

  if (auto rev = root.table("revocation")) {
    c.revocation_check = rev->boolean("check").value_or(c.revocation_check);
    if (auto on_failure = rev->string("on_failure")) {
      if (*on_failure == "refuse")
        c.refuse_on_check_failure = true;
      else if (*on_failure == "warn")
        c.refuse_on_check_failure = false;
      else
        rev->fail("on_failure", "must be \"refuse\" or \"warn\"",
                  "phải là \"refuse\" hoặc \"warn\"");
    }
    c.ocsp_url = rev->string_or("ocsp_url", "");
    if (!c.ocsp_url.empty() && !detail::valid_http_url(c.ocsp_url, false)) {
      rev->fail("ocsp_url", "must be an http:// or https:// URL",
                "phải là địa chỉ http:// hoặc https://");
    }
    rev->finish();
  }

  if (auto p11 = root.table("pkcs11")) {
    if (auto mods = p11->file_paths("modules", false)) c.pkcs11_modules = std::move(*mods);
    c.system_modules = p11->boolean("system_modules").value_or(c.system_modules);
    c.token_profiles = p11->file_path("profiles", true).value_or("");
    if (auto v = p11->integer("call_timeout_seconds", 1, 3600))
      c.pkcs11_call_timeout = std::chrono::seconds(*v);
    if (auto v = p11->integer("sign_timeout_seconds", 1, 3600))
      c.pkcs11_sign_timeout = std::chrono::seconds(*v);
    p11->finish();
  }

  for (auto& r : root.tables("remote")) {
    RemoteService s = read_remote(r);
    for (const auto& other : c.remote) {
      if (other.name == s.name)
        r.fail("name", "duplicate remote service name", "tên dịch vụ bị lặp lại");
    }
    c.remote.push_back(std::move(s));
  }

  if (auto limits = root.table("limits")) read_limits(*limits, c.limits);
  root.finish();
  return c;
}

}  // namespace kyso::firmware_config
