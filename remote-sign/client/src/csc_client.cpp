#include "kyso/remote/csc_client.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <thread>

#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"
#include "kyso/remote/csc_wire.hpp"

namespace kyso::remote {
namespace {

using nlohmann::json;

// Appends `s` to `out` as a JSON string literal (for bodies that carry secrets: built in one
// buffer that is wiped afterwards, never in a json object's copies).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

json hashes_json(std::span<const Bytes> hashes) {
  json a = json::array();
  for (const auto& h : hashes) a.push_back(to_base64(h));
  return a;
}

// Reads a field under either its v2 or its v1.0.4 name.
const json* field(const json& j, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (auto it = j.find(n); it != j.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

bool truthy(const json* j) {
  if (j == nullptr) return false;
  if (j->is_boolean()) return j->get<bool>();
  if (j->is_string()) return j->get<std::string>() == "true";
  return false;
}

std::string new_request_id() {
  std::array<std::uint8_t, 16> raw{};
  random_bytes(raw);
  return to_hex(raw);
}

const std::string& https_only(const std::string& url) {
  if (!url.starts_with("https://")) {
    throw Error(ErrorCode::ConfigInvalid,
                "remote service URL must be https://host[:port]/path: " + url);
  }
  return url;
}

http::Options http_options(const ClientOptions& o) {
  http::Options h;
  h.connect_timeout = o.connect_timeout;
  h.request_timeout = o.request_timeout;
  h.max_idle = o.max_idle;
  h.retries = o.retries;
  h.ca_file = o.ca_file;
  h.user_agent = "kyso-csc-client";
  return h;
}

}  // namespace

CscClient::CscClient(ClientOptions options)
    : options_(std::move(options)), http_(https_only(options_.base_url), http_options(options_)) {}

HttpResult CscClient::post(const std::string& method, const std::string& body,
                           const std::map<std::string, std::string>& headers, bool idempotent) {
  return http_.request("POST", "/" + method, body, "application/json", headers, idempotent);
}

std::unique_ptr<CscClient> CscClient::clone() const {
  auto c = std::make_unique<CscClient>(options_);
  c->token_ = token_;
  c->specs_ = specs_;
  return c;
}

HttpResult CscClient::call(const std::string& method, const std::string& body, bool idempotent) {
  std::map<std::string, std::string> headers;
  if (!token_.empty()) headers["Authorization"] = "Bearer " + token_;
  return post(method, body, headers, idempotent);
}

json CscClient::checked(const std::string& method, const std::string& body, bool idempotent,
                        const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> headers = extra;
  if (!token_.empty() && headers.count("Authorization") == 0) {
    headers["Authorization"] = "Bearer " + token_;
  }
  // Ties this request to the appliance's log line (on whichever node answers it).
  if (headers.count("X-Request-Id") == 0) headers["X-Request-Id"] = new_request_id();
  struct Wipe {  // this copy may hold a Basic password
    std::map<std::string, std::string>& h;
    ~Wipe() {
      for (auto& [k, v] : h) OPENSSL_cleanse(v.data(), v.size());
    }
  } wipe{headers};
  const HttpResult r = post(method, body, headers, idempotent);
  json j = r.body.empty() ? json::object() : json::parse(r.body, nullptr, false);
  if (r.status >= 200 && r.status < 300) {
    if (j.is_discarded()) throw Error(ErrorCode::RemoteError, method + ": the answer is not JSON");
    return j;
  }
  std::string error = "http_" + std::to_string(r.status);
  std::string description;
  if (!j.is_discarded() && j.is_object()) {
    error = j.value("error", error);
    description = j.value("error_description", std::string());
  }
  const std::string detail = method + ": HTTP " + std::to_string(r.status) + " " + error +
                             (description.empty() ? "" : ": " + description);
  if (error == "invalid_otp") throw Error(ErrorCode::OtpIncorrect, detail);
  if (error == "invalid_pin") throw Error(ErrorCode::PinIncorrect, detail);
  if (r.status == 403 && error == "access_denied") throw Error(ErrorCode::RemoteLocked, detail);
  if (r.status == 401 || error == "invalid_token" || error == "expired_token" ||
      error == "authentication_error" || error == "invalid_client") {
    if (r.status == 401 && error == "invalid_token") token_.clear();
    throw Error(ErrorCode::RemoteAuthFailed, detail);
  }
  throw Error(ErrorCode::RemoteError, detail);
}

json CscClient::info() {
  json j = checked("info", R"({"lang":"vi-VN"})", true);
  specs_ = j.value("specs", std::string());
  return j;
}

void CscClient::login(const std::string& user, const Secret& password) {
  // Every buffer that holds the password, or its base64, is sized once and wiped.
  std::string pair;
  pair.reserve(user.size() + 1 + password.size());
  pair += user;
  pair += ':';
  pair.append(password.view());
  std::string b64 =
      to_base64(std::span(reinterpret_cast<const std::uint8_t*>(pair.data()), pair.size()));
  OPENSSL_cleanse(pair.data(), pair.size());
  std::string header;
  header.reserve(6 + b64.size());
  header += "Basic ";
  header += b64;
  OPENSSL_cleanse(b64.data(), b64.size());
  token_.clear();
  std::map<std::string, std::string> extra;
  extra.emplace("Authorization", header);  // one copy, in the node (an initializer list makes two)
  auto wipe = [&] {
    OPENSSL_cleanse(header.data(), header.size());
    OPENSSL_cleanse(extra["Authorization"].data(), extra["Authorization"].size());
  };
  json j;
  try {
    j = checked("auth/login", R"({"rememberMe":false})", false, extra);
  } catch (...) {
    wipe();
    throw;
  }
  wipe();
  token_ = j.value("access_token", std::string());
  if (token_.empty()) throw Error(ErrorCode::RemoteError, "auth/login: no access_token");
}

void CscClient::login_client(const std::string& client_id, const Secret& secret) {
  std::string body = R"({"grant_type":"client_credentials","client_id":)";
  append_json_string(body, client_id);
  body += R"(,"client_secret":)";
  append_json_string(body, secret.view());
  body += "}";
  token_.clear();
  json j;
  try {
    j = checked("oauth2/token", body, false, {{"Content-Type", "application/json"}});
  } catch (...) {
    OPENSSL_cleanse(body.data(), body.size());
    throw;
  }
  OPENSSL_cleanse(body.data(), body.size());
  token_ = j.value("access_token", std::string());
  if (token_.empty()) throw Error(ErrorCode::RemoteError, "oauth2/token: no access_token");
}

std::vector<std::string> CscClient::list_credentials() {
  const json j = checked("credentials/list", "{}", true);
  std::vector<std::string> ids;
  if (const json* list = field(j, {"credentialIDs", "credentialIds"}); list && list->is_array()) {
    for (const auto& id : *list) {
      if (id.is_string()) ids.push_back(id.get<std::string>());
    }
  }
  return ids;
}

RemoteCredentialInfo CscClient::credential_info(const std::string& id) {
  json req{{"credentialID", id}, {"certificates", "chain"}, {"certInfo", true}, {"authInfo", true}};
  return parse_credential_info(id, checked("credentials/info", req.dump(), true));
}

RemoteCredentialInfo parse_credential_info(std::string id, const json& j) {
  RemoteCredentialInfo info;
  info.id = std::move(id);
  info.description = j.value("description", std::string());
  if (const json* cert = field(j, {"cert"}); cert && cert->is_object()) {
    if (const json* certs = field(*cert, {"certificates"}); certs && certs->is_array()) {
      for (const auto& c : *certs) {
        if (c.is_string()) info.certificates.push_back(from_base64(c.get<std::string>()));
      }
    }
  }
  if (const json* key = field(j, {"key"}); key && key->is_object()) {
    if (const json* algo = field(*key, {"algo"}); algo && algo->is_array()) {
      for (const auto& a : *algo) {
        if (a.is_string()) info.key_algorithms.push_back(a.get<std::string>());
      }
    }
  }
  // v2: auth.mode + auth.objects[]; v1.0.4: authMode + PIN.presence + OTP.presence.
  if (const json* auth = field(j, {"auth"}); auth && auth->is_object()) {
    info.auth_mode = auth->value("mode", std::string());
    if (const json* objs = field(*auth, {"objects"}); objs && objs->is_array()) {
      for (const auto& o : *objs) {
        const std::string oid = o.value("id", std::string());
        if (oid == "PIN") info.pin = true;
        if (oid == "OTP") info.otp = true;
      }
    }
  } else {
    info.auth_mode = j.value("authMode", std::string("explicit"));
    if (const json* pin = field(j, {"PIN"}); pin && pin->is_object()) {
      info.pin = truthy(field(*pin, {"presence"}));
    }
    if (const json* otp = field(j, {"OTP"}); otp && otp->is_object()) {
      info.otp = truthy(field(*otp, {"presence"}));
    }
  }
  if (const json* scal = field(j, {"SCAL", "scal"})) {
    info.scal = scal->is_string()           ? std::atoi(scal->get<std::string>().c_str())
                : scal->is_number_integer() ? scal->get<int>()
                                            : 1;
  }
  if (const json* ms = field(j, {"multisign", "multiSign"})) {
    if (ms->is_number_unsigned()) info.multisign = ms->get<std::size_t>();
    if (ms->is_string()) info.multisign = std::strtoul(ms->get<std::string>().c_str(), nullptr, 10);
  }
  if (info.multisign == 0) info.multisign = 1;
  return info;
}

Authorization CscClient::authorize(const std::string& id, std::span<const Bytes> hashes,
                                   HashAlgorithm hash, const Secret* pin, const Secret* otp) {
  json pub{{"credentialID", id},
           {"numSignatures", hashes.size()},
           {"hashes", hashes_json(hashes)},
           {"hashAlgorithmOID", wire::hash_oid(hash)}};
  std::string body = pub.dump();
  body.pop_back();  // the secrets go in by hand, into a buffer wiped below
  if (v1()) {
    if (pin != nullptr) {
      body += R"(,"PIN":)";
      append_json_string(body, pin->view());
    }
    if (otp != nullptr) {
      body += R"(,"OTP":)";
      append_json_string(body, otp->view());
    }
  } else {
    body += R"(,"authData":[)";
    bool first = true;
    for (auto [name, secret] : {std::pair{"PIN", pin}, std::pair{"OTP", otp}}) {
      if (secret == nullptr) continue;
      if (!first) body += ",";
      first = false;
      body += R"({"id":")";
      body += name;
      body += R"(","value":)";
      append_json_string(body, secret->view());
      body += "}";
    }
    body += "]";
  }
  body += "}";
  json j;
  try {
    j = checked("credentials/authorize", body, false);
  } catch (...) {
    OPENSSL_cleanse(body.data(), body.size());
    throw;
  }
  OPENSSL_cleanse(body.data(), body.size());
  Authorization a;
  a.sad = j.value("SAD", std::string());
  a.expires_in = std::chrono::seconds(j.value("expiresIn", 3600));
  if (a.sad.empty()) throw Error(ErrorCode::RemoteError, "credentials/authorize: no SAD");
  return a;
}

Authorization CscClient::extend(const std::string& id, const std::string& sad,
                                std::span<const Bytes> hashes, HashAlgorithm hash) {
  json req{{"credentialID", id}, {"SAD", sad}};
  if (!hashes.empty()) {
    req["hashes"] = hashes_json(hashes);
    req["hashAlgorithmOID"] = wire::hash_oid(hash);
  }
  const json j = checked("credentials/extendTransaction", req.dump(), false);
  Authorization a;
  a.sad = j.value("SAD", std::string());
  a.expires_in = std::chrono::seconds(j.value("expiresIn", 3600));
  if (a.sad.empty()) throw Error(ErrorCode::RemoteError, "credentials/extendTransaction: no SAD");
  return a;
}

std::vector<Bytes> CscClient::sign_hash(const std::string& id, const std::string& sad,
                                        std::span<const Bytes> hashes, SignAlgorithm alg) {
  json req{{"credentialID", id},
           {"SAD", sad},
           {"hashes", hashes_json(hashes)},
           {"hashAlgorithmOID", wire::hash_oid(hash_of(alg))},
           {"signAlgo", wire::sign_oid(alg)},
           {"operationMode", "S"}};
  // One request id for every attempt: the appliance lets the same request take its hashes
  // again (its answer was lost: a node died, a connection broke) and nothing else, so the
  // request is safe to re-send, to another node too. A 503 (the state database restarting)
  // changed nothing: it is re-sent after a pause, for up to `unavailable_wait`.
  const std::map<std::string, std::string> extra{{"X-Request-Id", new_request_id()}};
  const std::string body = req.dump();
  const auto give_up = std::chrono::steady_clock::now() + options_.unavailable_wait;
  json j;
  for (auto pause = std::chrono::milliseconds(200);;
       pause = std::min(pause * 2, std::chrono::milliseconds(2000))) {
    try {
      j = checked("signatures/signHash", body, true, extra);
      break;
    } catch (const Error& e) {
      const bool unavailable =
          e.code() == ErrorCode::RemoteError &&
          e.detail().find("HTTP 503 temporarily_unavailable") != std::string::npos;
      const bool unreachable = e.code() == ErrorCode::RemoteUnreachable;
      const auto now = std::chrono::steady_clock::now();
      if (!(unavailable || unreachable) || now >= give_up) throw;
      // The last pause ends at the deadline, for one more attempt there: the whole wait is used.
      std::this_thread::sleep_for(
          std::min(pause, std::chrono::duration_cast<std::chrono::milliseconds>(give_up - now) +
                              std::chrono::milliseconds(1)));
    }
  }
  const json* sigs = field(j, {"signatures"});
  if (sigs == nullptr || !sigs->is_array() || sigs->size() != hashes.size()) {
    throw Error(ErrorCode::RemoteError,
                "signatures/signHash: expected " + std::to_string(hashes.size()) + " signatures");
  }
  std::vector<Bytes> out;
  out.reserve(sigs->size());
  for (const auto& s : *sigs) {
    if (!s.is_string()) throw Error(ErrorCode::RemoteError, "signatures/signHash: bad signature");
    out.push_back(from_base64(s.get<std::string>()));
  }
  return out;
}

}  // namespace kyso::remote
