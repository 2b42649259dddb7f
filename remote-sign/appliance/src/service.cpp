#include "service.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/post.hpp>

#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "kyso/appliance/security.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/remote/csc_wire.hpp"

namespace kyso::appliance {
namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr const char* kSpecs = "2.0.0.2";

// A JSON answer (the transport's default content type).
HttpResponse answer(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

CscError invalid_request(std::string why) {
  return {400, "invalid_request", std::move(why)};
}

std::string random_token() {
  std::array<std::uint8_t, 32> raw{};
  random_bytes(raw);
  // base64url without padding: safe in headers, JSON and URLs.
  std::string s = to_base64(raw);
  std::ranges::replace(s, '+', '-');
  std::ranges::replace(s, '/', '_');
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string hash_hex(std::string_view s) {
  return to_hex(sha256(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())));
}

json parse_body(const HttpRequest& req) {
  if (req.body.empty()) return json::object();
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw invalid_request("the body is not a JSON object");
  return j;
}

std::string string_field(const json& j, const char* key, bool required = true) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required)
      throw invalid_request(std::string("Missing (or invalid type) string parameter ") + key);
    return {};
  }
  if (!it->is_string()) throw invalid_request(std::string("Invalid parameter ") + key);
  return it->get<std::string>();
}

// Wipes a JSON string in place (the PIN and OTP arrive as JSON strings).
void wipe(json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    OPENSSL_cleanse(s.data(), s.size());
  }
}

Secret take_secret(json& j) {
  if (!j.is_string()) throw invalid_request("authData values must be strings");
  Secret s(std::max<std::size_t>(64, j.get_ref<const std::string&>().size()));
  s.assign(j.get_ref<const std::string&>());
  wipe(j);
  return s;
}

// hashes[] (base64) with the length hashAlgorithmOID implies.
std::vector<Bytes> parse_hashes(const json& j, HashAlgorithm alg, std::size_t max_count) {
  const auto it = j.find("hashes");
  if (it == j.end() || !it->is_array() || it->empty()) {
    throw invalid_request("Missing (or invalid type) array parameter hashes");
  }
  if (it->size() > max_count) {
    throw invalid_request("Too many hashes: " + std::to_string(it->size()) + " > " +
                          std::to_string(max_count));
  }
  std::vector<Bytes> out;
  out.reserve(it->size());
  for (const auto& h : *it) {
    if (!h.is_string()) throw invalid_request("Invalid Base64 hash string parameter");
    Bytes b;
    try {
      b = from_base64(h.get<std::string>());
    } catch (const Error&) {
      throw invalid_request("Invalid Base64 hash string parameter");
    }
    if (b.size() != digest_size(alg)) {
      throw invalid_request("Invalid hash length for the hashAlgorithmOID");
    }
    out.push_back(std::move(b));
  }
  // Each approved hash is signed once: a set, so a repeat is a client's mistake, refused in
  // authorize (it would approve less than it shows) and in signHash (a request may take its own
  // hashes again, as its retry does, so a repeat within it would be signed twice).
  std::vector<std::size_t> order(out.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::ranges::sort(order, [&](auto x, auto y) { return out[x] < out[y]; });
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (out[order[i]] == out[order[i - 1]]) {
      throw invalid_request("hash " + std::to_string(std::max(order[i], order[i - 1])) +
                            " is listed twice: each approved hash is signed once");
    }
  }
  return out;
}

HashAlgorithm parse_hash_alg(const json& j, std::optional<SignAlgorithm> alg = std::nullopt) {
  const std::string oid = string_field(j, "hashAlgorithmOID", !alg.has_value());
  if (oid.empty() && alg) return hash_of(*alg);
  const auto h = remote::wire::hash_from_oid(oid);
  if (!h) throw invalid_request("Invalid parameter hashAlgorithmOID");
  return *h;
}

json cert_json(const Credential& c, const std::string& certificates, bool cert_info) {
  json cert = json::object();
  const auto now = Clock::now();
  cert["status"] =
      c.cert.valid_at(now) ? "valid" : (now > c.cert.not_after ? "expired" : "suspended");
  if (certificates != "none") {
    json list = json::array();
    list.push_back(to_base64(c.cert.der));
    if (certificates == "chain") {
      for (const auto& ca : c.chain) list.push_back(to_base64(ca));
    }
    cert["certificates"] = std::move(list);
  }
  if (cert_info) {
    cert["issuerDN"] = c.cert.issuer;
    cert["subjectDN"] = c.cert.subject;
    cert["serialNumber"] = c.cert.serial_hex;
    cert["validFrom"] = to_iso8601(c.cert.not_before);
    cert["validTo"] = to_iso8601(c.cert.not_after);
  }
  return cert;
}

}  // namespace

namespace {

template <typename Account>
std::vector<std::string> password_hashes(const std::vector<Account>& accounts) {
  std::vector<std::string> out;
  for (const auto& a : accounts) {
    if constexpr (requires { a.password_hash; }) {
      if (!a.password_hash.empty()) out.push_back(a.password_hash);
    } else {
      out.push_back(a.secret_hash);
    }
  }
  return out;
}

}  // namespace

HttpResponse error_response(const CscError& e) {
  HttpResponse r;
  r.status = e.status;
  // The description may quote what the client sent (a path, a parser's message): bytes that are
  // not UTF-8 become U+FFFD instead of throwing here, where nothing catches (handle_logged).
  r.body = json{{"error", e.error}, {"error_description", e.description}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::map<std::string, std::string> decode_form(std::string_view body) {
  auto unescape = [](std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        out += ' ';
      } else if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  };
  std::map<std::string, std::string> params;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos) {
      params[unescape(pair.substr(0, eq))] = unescape(pair.substr(eq + 1));
    }
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
  }
  return params;
}

Service::Service(const ApplianceConfig& config, StateStore& store, pkcs11::Library& library,
                 boost::asio::thread_pool& sign_pool)
    : config_(config),
      store_(store),
      sign_pool_(sign_pool),
      user_shadows_(password_hashes(config.users)),
      client_shadows_(password_hashes(config.clients)) {
  bool token_found = false;
  for (const auto& token : library.tokens()) {
    if (!config_.hsm_token_label.empty() || config_.hsm_slot) {
      // Only the configured partition: another one's credentials are not this appliance's.
      const auto info = token->info();
      if (config_.hsm_slot ? info.slot_id != *config_.hsm_slot
                           : info.label != config_.hsm_token_label) {
        continue;
      }
    }
    token_found = true;
    for (auto& cred : token->credentials()) {
      auto signer = token->signer(cred);
      const std::string id = cred.id();
      credentials_.emplace(id, HsmCredential{std::move(cred), token, std::move(signer)});
    }
  }
  if (!token_found && (!config_.hsm_token_label.empty() || config_.hsm_slot)) {
    throw Error(ErrorCode::TokenNotFound,
                config_.hsm_slot ? "no token in HSM slot " + std::to_string(*config_.hsm_slot)
                                 : "no HSM token labelled \"" + config_.hsm_token_label + "\"");
  }
  for (const auto& u : config_.users) {
    users_[u.name] = &u;
    for (const auto& id : u.credentials) {
      if (credentials_.count(id) == 0) {
        throw Error(ErrorCode::CredentialNotFound,
                    "user " + u.name + ": no credential " + id + " in the configured HSM");
      }
    }
    if (!u.totp_secret.empty()) (void)totp_generate(u.totp_secret, 0);  // validates base32
  }
}

ShadowHashes::ShadowHashes(const std::vector<std::string>& real) {
  random_bytes(key_);
  std::map<std::string, std::size_t> by_params;
  auto dummy_like = [&](const std::string& like) {
    // "$scrypt$ln=15,r=8,p=1$salt$key": the parameters are what sets the time.
    const std::string params =
        like.substr(0, like.find('$', std::min<std::size_t>(like.size(), 8)));
    const auto [it, fresh] = by_params.emplace(params, dummies_.size());
    if (fresh) {
      Secret dummy;
      dummy.assign(random_token());
      dummies_.push_back(hash_password_like(dummy, like));
    }
    return it->second;
  };
  for (const auto& h : real) per_account_.push_back(dummy_like(h));
  if (per_account_.empty()) per_account_.push_back(dummy_like(""));
}

const std::string& ShadowHashes::pick(std::string_view name) const {
  std::array<unsigned char, 32> mac{};
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_.data(), key_.size(),
                reinterpret_cast<const unsigned char*>(name.data()), name.size(), mac.data(),
                mac.size(), &len) == nullptr) {
    throw Error(ErrorCode::Internal, "HMAC failed");
  }
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | mac[i];
  return dummies_[per_account_[v % per_account_.size()]];
}

HttpResponse Service::handle(HttpRequest& req) noexcept {
  requests_.fetch_add(1, std::memory_order_relaxed);
  const auto t0 = std::chrono::steady_clock::now();
  HttpResponse r = handle_logged(req);
  // One structured line per request (the journal or the balancer's log collector reads it): the
  // client's request id ties it to the client's own log and to the other nodes'.
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::string error;
  if (r.status >= 400) {
    // CSC errors carry {"error": ...}; the health endpoint's 503 does not.
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_object()) {
      if (const auto it = j.find("error"); it != j.end() && it->is_string()) error = *it;
    }
  }
  const json line{{"time", to_iso8601(Clock::now())},
                  {"level", r.status >= 500   ? "error"
                            : r.status >= 400 ? "warn"
                                              : "info"},
                  {"node", config_.name},
                  {"pid", static_cast<long>(::getpid())},
                  {"request_id", req.request_id},
                  {"method", req.method},
                  {"target", req.target.substr(0, 64)},
                  {"status", r.status},
                  {"error", error},
                  {"ms", ms}};
  const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  (void)std::fwrite(text.data(), 1, text.size(), stderr);
  return r;
}

HttpResponse Service::handle_logged(HttpRequest& req) noexcept {
  try {
    std::string target = req.target;
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (target == "/health") return health();
    constexpr std::string_view kBase = "/csc/v2/";
    if (!target.starts_with(kBase)) throw CscError{404, "invalid_request", "Unknown API path"};
    HttpResponse r = dispatch(target.substr(kBase.size()), req);
    OPENSSL_cleanse(req.authorization.data(), req.authorization.size());
    return r;
  } catch (const CscError& e) {
    OPENSSL_cleanse(req.authorization.data(), req.authorization.size());
    return error_response(e);
  } catch (const json::exception& e) {
    return error_response({400, "invalid_request", std::string("Invalid parameter: ") + e.what()});
  } catch (const StoreUnavailable& e) {
    // Nothing was half-done (each state change is one database transaction): safe to retry.
    return error_response({503, "temporarily_unavailable", "State database: " + e.detail()});
  } catch (const Error& e) {
    return error_response({500, "server_error", std::string(e.name()) + ": " + e.detail()});
  } catch (const std::exception& e) {
    return error_response({500, "server_error", e.what()});
  }
}

HttpResponse Service::dispatch(const std::string& method, HttpRequest& req) {
  if (req.method != "POST" && !(req.method == "GET" && method == "info")) {
    throw CscError{405, "invalid_request", "Use POST"};
  }
  if (method == "info") return info();
  if (method == "auth/login") return auth_login(req);
  if (method == "auth/revoke") return auth_revoke(req);
  if (method == "oauth2/token") return oauth2_token(req);
  if (method == "credentials/list") return credentials_list(req);
  if (method == "credentials/info") return credentials_info(req);
  if (method == "credentials/authorize") return credentials_authorize(req);
  if (method == "credentials/extendTransaction") return credentials_extend(req);
  if (method == "signatures/signHash") return signatures_sign_hash(req);
  throw CscError{404, "invalid_request", "Unknown API method " + method};
}

std::string Service::bearer_hash(const HttpRequest& req) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!req.authorization.starts_with(kBearer)) {
    throw CscError{401, "invalid_token", "A Bearer access token is required"};
  }
  return hash_hex(std::string_view(req.authorization).substr(kBearer.size()));
}

Service::Caller Service::known_caller(std::optional<std::string> user, std::string bearer) {
  if (!user) throw CscError{401, "invalid_token", "The access token is invalid or expired"};
  return {std::move(*user), std::move(bearer)};
}

Service::Caller Service::authenticate(const HttpRequest& req) {
  std::string token_hash = bearer_hash(req);
  auto user = store_.token_user(token_hash, Clock::now());
  return known_caller(std::move(user), std::move(token_hash));
}

const ApplianceUser& Service::user(const std::string& name) const {
  return *users_.at(name);
}

const Service::HsmCredential& Service::owned_credential(const Caller& caller,
                                                        const std::string& id) const {
  const auto& mine = user(caller.user).credentials;
  // Another user's credential looks exactly like one that does not exist.
  if (std::ranges::find(mine, id) == mine.end()) {
    throw invalid_request("Invalid parameter credentialID");
  }
  return credentials_.at(id);
}

std::string Service::issue_token(const std::string& user) {
  std::string token = random_token();
  store_.put_token(hash_hex(token), user, Clock::now() + config_.limits.token_ttl);
  return token;
}

HttpResponse Service::health() {
  json j{{"status", "ok"}, {"backend", store_.backend()}};
  unsigned status = 200;
  try {
    std::set<pkcs11::Token*> seen;
    for (const auto& [id, c] : credentials_) {
      if (seen.insert(c.token.get()).second) (void)c.token->info();  // C_GetTokenInfo
    }
    j["hsm"] = "ok";
  } catch (const Error& e) {
    j["hsm"] = std::string(e.name());
    status = 503;
  }
  try {
    store_.ping();
    j["database"] = "ok";
  } catch (const Error& e) {
    j["database"] = e.detail();
    status = 503;
  }
  if (status != 200) j["status"] = "unavailable";
  return answer(status, j.dump());
}

HttpResponse Service::info() {
  json j{
      {"specs", kSpecs},
      {"name", config_.name},
      {"logo", ""},
      {"region", "VN"},
      {"lang", "vi-VN"},
      {"description", "Kyso signing appliance (CSC API v2, keys in a PKCS#11 HSM)"},
      {"authType", {"basic", "oauth2client"}},
      {"methods",
       {"info", "auth/login", "auth/revoke", "oauth2/token", "credentials/list", "credentials/info",
        "credentials/authorize", "credentials/extendTransaction", "signatures/signHash"}}};
  return answer(200, j.dump());
}

HttpResponse Service::auth_login(const HttpRequest& req) {
  constexpr std::string_view kBasic = "Basic ";
  if (!req.authorization.starts_with(kBasic)) {
    throw CscError{401, "invalid_request", "HTTP Basic credentials are required"};
  }
  Bytes decoded;
  try {
    decoded = from_base64(std::string_view(req.authorization).substr(kBasic.size()));
  } catch (const Error&) {
    throw CscError{401, "invalid_request", "Malformed Basic credentials"};
  }
  const auto colon = std::ranges::find(decoded, std::uint8_t{':'});
  if (colon == decoded.end()) {
    OPENSSL_cleanse(decoded.data(), decoded.size());
    throw CscError{401, "invalid_request", "Malformed Basic credentials"};
  }
  const std::string name(decoded.begin(), colon);
  Secret password(std::max<std::size_t>(64, decoded.size()));
  for (auto it = colon + 1; it != decoded.end(); ++it) password.push_back(static_cast<char>(*it));
  OPENSSL_cleanse(decoded.data(), decoded.size());

  const auto now = Clock::now();
  // The attempt is counted before the password is checked: parallel guesses cannot outrun it.
  if (store_.begin_attempt(name, "login", now, config_.limits.max_failures) == Attempt::Locked) {
    store_.audit(name, "login.refused", "user locked");
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  const auto it = users_.find(name);
  const bool known = it != users_.end() && !it->second->password_hash.empty();
  const bool ok =
      verify_password(password, known ? it->second->password_hash : user_shadows_.pick(name)) &&
      known;
  if (!ok) {
    const bool locked = store_.attempt_failed(name, "login", now, config_.limits.max_failures,
                                              config_.limits.lockout);
    store_.audit(name, "login.failed", locked ? "wrong password; user locked" : "wrong password");
    throw CscError{401, "authentication_error", "Invalid username or password"};
  }
  store_.attempt_succeeded(name, "login");
  const std::string token = issue_token(name);
  store_.audit(name, "login", "basic");
  json j{{"access_token", token}, {"expires_in", config_.limits.token_ttl.count()}};
  return answer(200, j.dump());
}

HttpResponse Service::auth_revoke(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  store_.revoke_token(caller.bearer);
  store_.audit(caller.user, "token.revoked", "");
  return answer(204, "");
}

HttpResponse Service::oauth2_token(HttpRequest& req) {
  // Form-encoded (RFC 6749) or JSON; client authentication in the body or as HTTP Basic.
  std::map<std::string, std::string> params;
  if (req.content_type.starts_with("application/json")) {
    const json body = parse_body(req);
    for (const auto& [k, v] : body.items()) {
      if (v.is_string()) params[k] = v.get<std::string>();
    }
  } else {
    try {
      params = decode_form(req.body);
    } catch (const std::exception&) {
      throw invalid_request("Malformed form body");
    }
  }
  OPENSSL_cleanse(req.body.data(), req.body.size());
  if (params["grant_type"] != "client_credentials") {
    throw CscError{400, "unsupported_grant_type", "Only client_credentials is supported"};
  }
  std::string id = params["client_id"];
  Secret secret(std::max<std::size_t>(64, params["client_secret"].size()));
  secret.assign(params["client_secret"]);
  OPENSSL_cleanse(params["client_secret"].data(), params["client_secret"].size());
  if (id.empty() && req.authorization.starts_with("Basic ")) {
    Bytes d = from_base64(std::string_view(req.authorization).substr(6));
    const auto colon = std::ranges::find(d, std::uint8_t{':'});
    if (colon != d.end()) {
      id.assign(d.begin(), colon);
      secret.wipe();
      for (auto it = colon + 1; it != d.end(); ++it) secret.push_back(static_cast<char>(*it));
    }
    OPENSSL_cleanse(d.data(), d.size());
  }
  const std::string key = "oauth:" + id;
  const auto now = Clock::now();
  if (store_.begin_attempt(key, "login", now, config_.limits.max_failures) == Attempt::Locked) {
    store_.audit(key, "oauth2.refused", "client locked");
    throw CscError{403, "access_denied", "Client locked"};
  }
  const OAuthClient* client = nullptr;
  for (const auto& c : config_.clients) {
    if (c.client_id == id) client = &c;
  }
  const bool ok =
      verify_password(secret, client != nullptr ? client->secret_hash : client_shadows_.pick(id)) &&
      client != nullptr;
  if (!ok) {
    store_.attempt_failed(key, "login", now, config_.limits.max_failures, config_.limits.lockout);
    store_.audit(key, "oauth2.failed", "wrong client secret");
    throw CscError{401, "invalid_client", "Client authentication failed"};
  }
  store_.attempt_succeeded(key, "login");
  const std::string token = issue_token(client->user);
  store_.audit(client->user, "login", "oauth2 client " + id);
  json j{{"access_token", token},
         {"token_type", "Bearer"},
         {"expires_in", config_.limits.token_ttl.count()}};
  return answer(200, j.dump());
}

HttpResponse Service::credentials_list(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  const json body = parse_body(req);
  if (const auto uid = body.find("userID");
      uid != body.end() && uid->is_string() && uid->get<std::string>() != caller.user) {
    throw invalid_request("Invalid parameter userID");
  }
  const bool with_info = body.value("credentialInfo", false);
  json ids = json::array();
  json infos = json::array();
  for (const auto& id : user(caller.user).credentials) {
    ids.push_back(id);
    if (with_info) {
      const auto& c = credentials_.at(id).credential;
      infos.push_back(
          {{"credentialID", id},
           {"key", {{"status", "enabled"}, {"algo", remote::wire::key_algo_oids(c.cert)}}},
           {"cert", cert_json(c, body.value("certificates", std::string("single")),
                              body.value("certInfo", false))}});
    }
  }
  json j{{"credentialIDs", ids}};
  if (with_info) j["credentialInfos"] = infos;
  return answer(200, j.dump());
}

HttpResponse Service::credentials_info(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  const json body = parse_body(req);
  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const Credential& c = hsm.credential;
  const ApplianceUser& u = user(caller.user);
  const bool otp = !u.totp_secret.empty();

  json key{{"status", "enabled"},
           {"algo", remote::wire::key_algo_oids(c.cert)},
           {"len", c.cert.key_bits}};
  if (!c.cert.curve.empty()) key["curve"] = c.cert.curve;
  json objects = json::array();
  objects.push_back({{"type", "Password"},
                     {"id", "PIN"},
                     {"format", "N"},
                     {"label", "PIN"},
                     {"description", "PIN of the signing key in the HSM"}});
  if (otp) {
    objects.push_back({{"type", "Password"},
                       {"id", "OTP"},
                       {"format", "N"},
                       {"label", "OTP"},
                       {"generator", "totp"},
                       {"description", "6-digit code from the authenticator app (RFC 6238)"}});
  }
  json j{
      {"description", c.cert.common_name},
      {"key", key},
      {"cert", cert_json(c, body.value("certificates", std::string("single")),
                         body.value("certInfo", false))},
      {"auth",
       {{"mode", "explicit"}, {"expression", otp ? "PIN AND OTP" : "PIN"}, {"objects", objects}}},
      {"SCAL", "2"},
      {"multisign", config_.limits.multisign},
      {"lang", "vi-VN"},
      // CSC v1.0.4 names, for clients of the older API.
      {"authMode", "explicit"},
      {"PIN", {{"presence", "true"}, {"format", "N"}, {"label", "PIN"}}}};
  if (otp) {
    j["OTP"] = {{"presence", "true"}, {"type", "offline"}, {"format", "N"},
                {"label", "OTP"},     {"ID", "totp"},      {"provider", "RFC 6238"}};
  } else {
    j["OTP"] = {{"presence", "false"}};
  }
  return answer(200, j.dump());
}

std::optional<CscError> Service::check_otp(const ApplianceUser& u, const Secret* otp,
                                           std::string& why) {
  if (u.totp_secret.empty()) return std::nullopt;
  const auto now = Clock::now();
  std::optional<std::uint64_t> counter;
  if (otp != nullptr) {
    counter = totp_match(u.totp_secret, *otp, Clock::to_time_t(now), config_.limits.totp_window);
  }
  if (counter && store_.accept_totp_counter(u.name, *counter)) return std::nullopt;
  why = counter ? "OTP reused" : "wrong OTP";
  return CscError{400, "invalid_otp", counter ? "The OTP was already used" : "Invalid OTP"};
}

std::optional<CscError> Service::check_pin(const std::string& user_name, const HsmCredential& cred,
                                           const Secret& pin, std::string& why) {
  const PinTagger::Tag tag = pin_tags_.tag(pin);
  bool ok = false;
  why = "wrong PIN";
  {
    const std::lock_guard lock(pin_mutex_);
    const auto it = accepted_pins_.find(cred.token->identity());
    // Once the HSM accepted a PIN, every later one is compared with it first, also when the
    // token must log in again (after an HSM reset): a module still logged in at the PKCS#11
    // level answers CKR_USER_ALREADY_LOGGED_IN to any PIN.
    const bool known = it != accepted_pins_.end();
    ok = known && PinTagger::same(tag, it->second);
    if ((ok && !cred.token->logged_in()) || !known) {
      try {
        cred.token->login(&pin);  // the HSM itself checks the PIN (C_Login)
        accepted_pins_[cred.token->identity()] = tag;
        ok = true;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::PinIncorrect && e.code() != ErrorCode::PinRepeated &&
            e.code() != ErrorCode::PinInvalid) {
          store_.audit(user_name, "authorize.failed", std::string("HSM: ") + std::string(e.name()));
          throw CscError{503, "temporarily_unavailable",
                         "The HSM refused the login: " + std::string(e.name())};
        }
        ok = false;
        why = "wrong PIN (" + std::string(e.name()) + ")";
      }
    }
  }
  if (ok) return std::nullopt;
  return CscError{400, "invalid_pin", "Invalid PIN"};
}

namespace {

/// What one credentials/authorize approves: a credential and exactly these hashes.
struct Approval {
  std::string credential;
  HashAlgorithm alg = HashAlgorithm::Sha256;
  std::vector<Bytes> hashes;
};

// The approved set, from CSC v2.0's `hashes` + `hashAlgorithmOID` or from
// `authorization_details` (RFC 9396, the form CSC v2 gives oauth2/authorize and v2.2 moves to):
// [{"type": "credential", "credentialID", "hashAlgorithmOID", "documentDigests": [{"hash",
// "label"}]}]. Both may be present; they must then list the same hashes in the same order.
Approval parse_approval(const json& body, std::size_t max_count) {
  Approval a;
  a.credential = string_field(body, "credentialID", false);
  std::optional<std::vector<Bytes>> from_details;
  if (auto it = body.find("authorization_details"); it != body.end() && !it->is_null()) {
    json details = it->is_string() ? json::parse(it->get<std::string>(), nullptr, false) : *it;
    if (details.is_object()) details = json::array({details});
    if (!details.is_array() || details.size() != 1 || !details[0].is_object() ||
        details[0].value("type", std::string()) != "credential") {
      throw invalid_request(
          "Invalid parameter authorization_details: one object of type credential");
    }
    const json& d = details[0];
    const std::string cred = string_field(d, "credentialID", false);
    if (!cred.empty() && !a.credential.empty() && cred != a.credential) {
      throw invalid_request("authorization_details names another credentialID");
    }
    if (a.credential.empty()) a.credential = cred;
    a.alg = parse_hash_alg(d);
    const auto digests = d.find("documentDigests");
    if (digests == d.end() || !digests->is_array()) {
      throw invalid_request("Missing (or invalid type) array parameter documentDigests");
    }
    json hashes = json::array();
    for (const auto& dd : *digests) {
      if (!dd.is_object() || !dd.contains("hash")) {
        throw invalid_request("Invalid parameter documentDigests: each needs a hash");
      }
      hashes.push_back(dd["hash"]);
    }
    from_details = parse_hashes(json{{"hashes", hashes}}, a.alg, max_count);
  }
  if (a.credential.empty()) throw invalid_request("Missing string parameter credentialID");
  if (body.contains("hashes") || !from_details) {
    const HashAlgorithm alg = parse_hash_alg(body);
    a.hashes = parse_hashes(body, alg, max_count);
    if (from_details && (alg != a.alg || *from_details != a.hashes)) {
      throw invalid_request("hashes and authorization_details differ");
    }
    a.alg = alg;
  } else {
    a.hashes = std::move(*from_details);
  }
  const auto n = body.find("numSignatures");
  if (n == body.end() || !n->is_number_unsigned() || n->get<std::size_t>() != a.hashes.size()) {
    throw invalid_request("numSignatures must equal the number of approved hashes");
  }
  return a;
}

// The PIN travels with the SAD to whichever node signs: AES-256-GCM under HMAC-SHA256(SAD, label).
// The store has only the SAD's hash, so a copy of the database cannot open it.
std::array<unsigned char, 32> seal_key(std::string_view sad) {
  std::array<unsigned char, 32> key{};
  std::size_t len = 0;
  constexpr std::string_view kLabel = "kyso-appliance sealed PIN v1";
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, sad.data(), sad.size(),
                reinterpret_cast<const unsigned char*>(kLabel.data()), kLabel.size(), key.data(),
                key.size(), &len) == nullptr) {
    throw Error(ErrorCode::Internal, "HMAC failed");
  }
  return key;
}

std::string seal_pin(std::string_view sad, const Secret& pin) {
  auto key = seal_key(sad);
  std::array<unsigned char, 12> iv{};
  random_bytes(iv);
  Bytes out(iv.begin(), iv.end());
  out.resize(iv.size() + pin.size() + 16);
  const std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                            &EVP_CIPHER_CTX_free);
  int n = 0;
  int fin = 0;
  const bool ok =
      ctx &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), iv.data()) == 1 &&
      EVP_EncryptUpdate(ctx.get(), out.data() + iv.size(), &n, pin.data(),
                        static_cast<int>(pin.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), out.data() + iv.size() + n, &fin) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16,
                          out.data() + iv.size() + pin.size()) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) throw Error(ErrorCode::Internal, "AES-GCM failed");
  return to_hex(out);
}

std::optional<Secret> unseal_pin(std::string_view sad, const std::string& sealed) {
  if (sealed.size() < 2 * (12 + 16)) return std::nullopt;
  const Bytes in = from_hex(sealed);
  auto key = seal_key(sad);
  const std::size_t len = in.size() - 12 - 16;
  Bytes plain(len + 16);
  const std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                            &EVP_CIPHER_CTX_free);
  int n = 0;
  int fin = 0;
  Bytes tag(in.end() - 16, in.end());
  const bool ok =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), in.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &n, in.data() + 12, static_cast<int>(len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + n, &fin) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  std::optional<Secret> pin;
  if (ok) {
    pin.emplace(std::max<std::size_t>(64, len));
    for (std::size_t i = 0; i < len; ++i) pin->push_back(static_cast<char>(plain[i]));
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  return pin;
}

CscError not_approved(std::size_t index) {
  return invalid_request("hash " + std::to_string(index) +
                         " is not in the approved set or was already signed");
}

}  // namespace

HttpResponse Service::credentials_authorize(HttpRequest& req) {
  const Caller caller = authenticate(req);
  json body = parse_body(req);
  OPENSSL_cleanse(req.body.data(), req.body.size());
  // Take the secrets out of the JSON first so every path below wipes them.
  std::optional<Secret> pin;
  std::optional<Secret> otp;
  if (auto it = body.find("authData"); it != body.end() && it->is_array()) {  // CSC v2
    for (auto& item : *it) {
      if (!item.is_object() || !item.contains("id") || !item.contains("value")) continue;
      const std::string id = item["id"].is_string() ? item["id"].get<std::string>() : "";
      if (id == "PIN") pin = take_secret(item["value"]);
      if (id == "OTP") otp = take_secret(item["value"]);
      wipe(item["value"]);
    }
  }
  if (auto it = body.find("PIN"); it != body.end() && !pin) pin = take_secret(*it);  // v1.0.4
  if (auto it = body.find("OTP"); it != body.end() && !otp) otp = take_secret(*it);

  // The whole batch is approved here, in one request: up to transaction_signatures hashes.
  const Approval approval = parse_approval(body, config_.limits.transaction_signatures);
  const auto& hsm = owned_credential(caller, approval.credential);
  if (!pin) throw invalid_request("Missing PIN");
  const auto now = Clock::now();
  // Counted before the OTP and the PIN are checked: parallel guesses cannot outrun the limit.
  if (store_.begin_attempt(caller.user, "authorize", now, config_.limits.max_failures) ==
      Attempt::Locked) {
    store_.audit(caller.user, "authorize.refused", "user locked");
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  std::string why;
  auto refusal = check_otp(user(caller.user), otp ? &*otp : nullptr, why);
  if (!refusal) refusal = check_pin(caller.user, hsm, *pin, why);
  if (refusal) {
    const bool locked = store_.attempt_failed(caller.user, "authorize", now,
                                              config_.limits.max_failures, config_.limits.lockout);
    store_.audit(caller.user, "authorize.failed", why + (locked ? "; user locked" : ""));
    throw *refusal;
  }
  store_.attempt_succeeded(caller.user, "authorize");

  const std::string txn = hash_hex(random_token());
  const auto txn_expires = now + config_.limits.transaction_ttl;
  const std::string sad = random_token();
  const auto expires = std::min(now + config_.limits.sad_ttl, txn_expires);
  store_.put_transaction(txn,
                         {caller.user, caller.bearer, hsm.credential.id(),
                          std::string(remote::wire::hash_oid(approval.alg)), txn_expires},
                         approval.hashes, hash_hex(sad), expires, seal_pin(sad, *pin));
  store_.audit(caller.user, "authorize",
               "credential " + hsm.credential.id() + ", " + std::to_string(approval.hashes.size()) +
                   " hashes, transaction " + txn.substr(0, 16));
  json j{{"SAD", sad},
         {"expiresIn", std::chrono::duration_cast<std::chrono::seconds>(expires - now).count()}};
  return answer(200, j.dump());
}

namespace {

// The SAD checks shared by extendTransaction and signHash. Every mismatch reads the same to the
// caller, so a SAD found for someone else reveals nothing.
SadRecord checked_sad(std::optional<SadRecord> sad, const std::string& user,
                      const std::string& bearer, const std::string& credential) {
  if (!sad || sad->approval.user != user || sad->approval.bearer != bearer ||
      sad->approval.credential != credential) {
    throw CscError{400, "invalid_request", "Invalid SAD"};
  }
  if (sad->extended) {
    throw CscError{400, "invalid_request", "The SAD was replaced by extendTransaction"};
  }
  if (sad->expires <= Clock::now()) throw CscError{400, "invalid_request", "SAD expired"};
  return std::move(*sad);
}

SadRecord valid_sad(StateStore& store, const std::string& sad_hash, const std::string& user,
                    const std::string& bearer, const std::string& credential) {
  return checked_sad(store.sad(sad_hash), user, bearer, credential);
}

}  // namespace

// extendTransaction renews the SAD of an approval, never widens it: the new SAD covers the same
// approved hashes that are still unsigned, the old one dies (a SAD is extended once), and any
// `hashes` given must all be among them.
HttpResponse Service::credentials_extend(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  const json body = parse_body(req);
  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const std::string old_hash = hash_hex(string_field(body, "SAD"));
  const SadRecord old =
      valid_sad(store_, old_hash, caller.user, caller.bearer, hsm.credential.id());
  if (body.contains("hashes")) {
    const HashAlgorithm alg = parse_hash_alg(body);
    if (remote::wire::hash_oid(alg) != old.approval.hash_algorithm) {
      throw invalid_request("The hash algorithm differs from the approved one");
    }
    const auto hashes = parse_hashes(body, alg, config_.limits.transaction_signatures);
    if (const HashCheck c = store_.check_unsigned(old.transaction, hashes); !c.ok) {
      store_.audit(caller.user, "extend.refused",
                   "hash " + std::to_string(c.first_bad) + " outside the approval");
      throw not_approved(c.first_bad);
    }
  }
  const auto now = Clock::now();
  if (store_.locked(caller.user, now)) {
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  const std::string sad = random_token();
  const auto expires = std::min(now + config_.limits.sad_ttl, old.approval.expires);
  const std::string old_sad = string_field(body, "SAD");
  const auto pin = unseal_pin(old_sad, old.sealed_pin);
  if (!pin) throw invalid_request("Invalid SAD");
  if (!store_.extend_sad(old_hash, hash_hex(sad), expires, now, seal_pin(sad, *pin))) {
    store_.audit(caller.user, "extend.refused", "SAD already extended or expired");
    throw invalid_request("The SAD was already extended or has expired");
  }
  store_.audit(
      caller.user, "authorize.extend",
      "credential " + hsm.credential.id() + ", transaction " + old.transaction.substr(0, 16));
  json j{{"SAD", sad},
         {"expiresIn", std::chrono::duration_cast<std::chrono::seconds>(expires - now).count()}};
  return answer(200, j.dump());
}

void Service::login_for(const std::string& user_name, const HsmCredential& cred,
                        const std::string& sad_text, const SadRecord& sad) {
  if (cred.token->logged_in()) return;
  // This node's HSM session has not seen the user's PIN (the approval was made on another node,
  // or this node restarted): log in with the PIN sealed under the SAD.
  const auto pin = unseal_pin(sad_text, sad.sealed_pin);
  if (!pin) throw invalid_request("The HSM session was reset: authorize again");
  std::string why;
  if (check_pin(user_name, cred, *pin, why)) {
    store_.audit(user_name, "sign.failed", "sealed PIN refused by the HSM: " + why);
    throw invalid_request("The HSM refused the PIN: authorize again");
  }
}

HttpResponse Service::signatures_sign_hash(const HttpRequest& req) {
  // The bearer token and the SAD are read together (one database round trip on PostgreSQL, where
  // they were two); the token is still judged first, so a bad one answers 401 whatever the body.
  const std::string bearer = bearer_hash(req);
  json body = json::object();
  std::optional<CscError> bad_body;
  try {
    body = parse_body(req);
  } catch (const CscError& e) {
    bad_body = e;
  }
  const auto sad_field = body.find("SAD");
  auto [user, sad_found] = store_.token_user_and_sad(
      bearer,
      hash_hex(sad_field != body.end() && sad_field->is_string() ? sad_field->get<std::string>()
                                                                 : std::string()),
      Clock::now());
  const Caller caller = known_caller(std::move(user), bearer);
  if (bad_body) throw *bad_body;
  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const std::string sad_hash = hash_hex(string_field(body, "SAD"));
  const SadRecord sad =
      checked_sad(std::move(sad_found), caller.user, caller.bearer, hsm.credential.id());
  if (body.value("operationMode", std::string("S")) != "S") {
    throw invalid_request("Only synchronous operationMode S is supported");
  }
  const auto sign_alg = remote::wire::sign_from_oids(string_field(body, "signAlgo"),
                                                     body.value("hashAlgorithmOID", std::string()));
  if (!sign_alg) throw invalid_request("Invalid parameter signAlgo");
  if (is_ecdsa(*sign_alg) != (hsm.credential.cert.key_type == "EC")) {
    throw invalid_request("signAlgo does not fit the credential's key");
  }
  if (remote::wire::hash_oid(hash_of(*sign_alg)) != sad.approval.hash_algorithm) {
    throw invalid_request("The hash algorithm differs from the authorized one");
  }
  const auto hashes = parse_hashes(body, hash_of(*sign_alg), config_.limits.multisign);
  login_for(caller.user, hsm, string_field(body, "SAD"), sad);
  // One atomic step marks every hash signed (all or nothing) while the SAD is live: two requests
  // racing for a hash, on one node or two, cannot both get it.
  if (const HashCheck c = store_.consume(sad_hash, hashes, Clock::now(), req.request_id); !c.ok) {
    if (c.sad_dead) throw invalid_request("The SAD has expired or was extended");
    store_.audit(caller.user, "sign.refused",
                 "hash " + std::to_string(c.first_bad) + " outside the approval or already signed");
    throw not_approved(c.first_bad);
  }

  // Spread the chunk over the HSM sessions, one contiguous share each, signed as one run on
  // its session (one hand-off to the PKCS#11 call pool per share, not per signature); this
  // worker waits, io threads never do.
  const std::size_t n = hashes.size();
  const std::size_t parts = std::min<std::size_t>(config_.limits.sign_threads, n);
  std::vector<SignResult> results(n);
  std::vector<std::future<void>> done;
  done.reserve(parts);
  for (std::size_t p = 0; p < parts; ++p) {
    const std::size_t from = n * p / parts;
    const std::size_t to = n * (p + 1) / parts;
    auto task = std::make_shared<std::packaged_task<void()>>([&, from, to] {
      const auto t0 = std::chrono::steady_clock::now();
      auto share = hsm.signer->sign_digests(*sign_alg, std::span(hashes).subspan(from, to - from),
                                            SignatureEncoding::Der);
      signing_ns_.fetch_add(
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - t0)
                                         .count()),
          std::memory_order_relaxed);
      std::ranges::move(share, results.begin() + static_cast<std::ptrdiff_t>(from));
    });
    done.push_back(task->get_future());
    boost::asio::post(sign_pool_, [task] { (*task)(); });
  }
  std::optional<Error> failure;
  for (auto& f : done) {
    try {
      f.get();
    } catch (const Error& e) {
      if (!failure) failure = e;
    }
  }
  for (const auto& r : results) {
    if (!failure && r.error) failure = r.error;
  }
  if (failure) {
    store_.audit(caller.user, "sign.failed",
                 std::string(failure->name()) + ": " + failure->detail());
    if (failure->code() == ErrorCode::LoginRequired) {
      throw CscError{400, "invalid_request", "The HSM session was reset: authorize again"};
    }
    throw CscError{500, "server_error", "Signing failed: " + std::string(failure->name())};
  }
  json sigs = json::array();
  for (const auto& r : results) sigs.push_back(to_base64(r.signature));
  store_.audit(caller.user, "sign",
               "credential " + hsm.credential.id() + ", " + std::to_string(n) + " signatures, " +
                   std::string(to_string(*sign_alg)));
  return answer(200, json{{"signatures", sigs}}.dump());
}

}  // namespace kyso::appliance
