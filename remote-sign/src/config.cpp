// The appliance's JSON configuration (docs/remote-signing.md shows a full example).
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kyso/core/error.hpp"
#include "kyso/remote/appliance.hpp"

namespace kyso::remote {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& file, const std::string& key, const std::string& what) {
  throw Error(ErrorCode::ConfigInvalid, file + ": " + key + ": " + what);
}

template <typename T>
void read(const json& j, const char* key, T& out, const std::string& file,
          const std::string& where) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception& e) {
    bad(file, where + key, e.what());
  }
}

void read_seconds(const json& j, const char* key, std::chrono::seconds& out,
                  const std::string& file) {
  long long v = out.count();
  read(j, key, v, file, "limits.");
  if (v <= 0) bad(file, std::string("limits.") + key, "must be positive");
  out = std::chrono::seconds{v};
}

}  // namespace

ApplianceConfig load_appliance_config(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::ConfigInvalid, "cannot read " + file);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    bad(file, "(document)", e.what());
  }
  if (!j.is_object()) bad(file, "(document)", "must be a JSON object");

  ApplianceConfig c;
  read(j, "name", c.name, file, "");
  read(j, "listen", c.listen_address, file, "");
  read(j, "port", c.port, file, "");
  if (j.contains("tls")) {
    read(j["tls"], "cert", c.tls_cert_file, file, "tls.");
    read(j["tls"], "key", c.tls_key_file, file, "tls.");
  }
  if (c.tls_cert_file.empty() || c.tls_key_file.empty()) {
    bad(file, "tls", "cert and key are required (the appliance only speaks HTTPS)");
  }
  read(j, "pkcs11_modules", c.pkcs11_modules, file, "");
  if (c.pkcs11_modules.empty()) bad(file, "pkcs11_modules", "name the HSM's PKCS#11 module");
  std::string db;
  read(j, "state_db", db, file, "");
  if (db.empty()) bad(file, "state_db", "required (a SQLite file path)");
  c.state_db = db;

  std::set<std::string> names;
  if (j.contains("users")) {
    if (!j["users"].is_array()) bad(file, "users", "must be an array");
    for (std::size_t i = 0; i < j["users"].size(); ++i) {
      const json& u = j["users"][i];
      const std::string where = "users[" + std::to_string(i) + "].";
      ApplianceUser user;
      read(u, "name", user.name, file, where);
      read(u, "password_hash", user.password_hash, file, where);
      read(u, "totp_secret", user.totp_secret, file, where);
      read(u, "credentials", user.credentials, file, where);
      if (user.name.empty()) bad(file, where + "name", "required");
      if (!names.insert(user.name).second) bad(file, where + "name", "duplicate user");
      c.users.push_back(std::move(user));
    }
  }
  if (j.contains("clients")) {
    for (std::size_t i = 0; i < j["clients"].size(); ++i) {
      const json& o = j["clients"][i];
      const std::string where = "clients[" + std::to_string(i) + "].";
      OAuthClient client;
      read(o, "client_id", client.client_id, file, where);
      read(o, "secret_hash", client.secret_hash, file, where);
      read(o, "user", client.user, file, where);
      if (client.client_id.empty() || client.secret_hash.empty()) {
        bad(file, where + "client_id", "client_id and secret_hash are required");
      }
      if (names.count(client.user) == 0) bad(file, where + "user", "no such user");
      c.clients.push_back(std::move(client));
    }
  }
  if (j.contains("limits")) {
    const json& l = j["limits"];
    auto& L = c.limits;
    read(l, "max_body_bytes", L.max_body_bytes, file, "limits.");
    read(l, "multisign", L.multisign, file, "limits.");
    read(l, "max_failures", L.max_failures, file, "limits.");
    read(l, "transaction_signatures", L.transaction_signatures, file, "limits.");
    read(l, "totp_window", L.totp_window, file, "limits.");
    read(l, "max_connections", L.max_connections, file, "limits.");
    read(l, "io_threads", L.io_threads, file, "limits.");
    read(l, "workers", L.workers, file, "limits.");
    read(l, "sign_threads", L.sign_threads, file, "limits.");
    read_seconds(l, "lockout_seconds", L.lockout, file);
    read_seconds(l, "token_ttl_seconds", L.token_ttl, file);
    read_seconds(l, "sad_ttl_seconds", L.sad_ttl, file);
    read_seconds(l, "transaction_ttl_seconds", L.transaction_ttl, file);
    read_seconds(l, "request_timeout_seconds", L.request_timeout, file);
    read_seconds(l, "idle_timeout_seconds", L.idle_timeout, file);
    if (L.multisign == 0 || L.max_failures == 0 || L.io_threads == 0 || L.workers == 0 ||
        L.sign_threads == 0 || L.max_body_bytes < 1024) {
      bad(file, "limits",
          "multisign, max_failures and thread counts must be positive, "
          "max_body_bytes at least 1024");
    }
  }
  return c;
}

}  // namespace kyso::remote
