#include "service.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <future>
#include <nlohmann/json.hpp>

#include "kyso/appliance/security.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/remote/csc_wire.hpp"

namespace kyso::appliance {
namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr const char* kSpecs = "2.0.0.2";

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

HttpResponse error_response(const CscError& e) {
  HttpResponse r;
  r.status = e.status;
  r.body = json{{"error", e.error}, {"error_description", e.description}}.dump();
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

Service::Service(const ApplianceConfig& config, StateStore& store, pkcs11::Library& library,
                 boost::asio::thread_pool& sign_pool)
    : config_(config), store_(store), sign_pool_(sign_pool) {
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
  Secret dummy;
  dummy.assign(random_token());
  dummy_hash_ = hash_password(dummy, 15);
}

HttpResponse Service::handle(HttpRequest& req) noexcept {
  requests_.fetch_add(1, std::memory_order_relaxed);
  try {
    std::string target = req.target;
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
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

Service::Caller Service::authenticate(const HttpRequest& req) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!req.authorization.starts_with(kBearer)) {
    throw CscError{401, "invalid_token", "A Bearer access token is required"};
  }
  const std::string token_hash =
      hash_hex(std::string_view(req.authorization).substr(kBearer.size()));
  auto user = store_.token_user(token_hash, Clock::now());
  if (!user) throw CscError{401, "invalid_token", "The access token is invalid or expired"};
  return {std::move(*user), token_hash};
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
  return {200, j.dump(), false};
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
  if (store_.locked(name, now)) {
    store_.audit(name, "login.refused", "user locked");
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  const auto it = users_.find(name);
  const bool known = it != users_.end() && !it->second->password_hash.empty();
  const bool ok =
      verify_password(password, known ? it->second->password_hash : dummy_hash_) && known;
  if (!ok) {
    const bool locked = store_.record_failure(name, "login", now, config_.limits.max_failures,
                                              config_.limits.lockout);
    store_.audit(name, "login.failed", locked ? "wrong password; user locked" : "wrong password");
    throw CscError{401, "authentication_error", "Invalid username or password"};
  }
  store_.clear_failures(name, "login");
  const std::string token = issue_token(name);
  store_.audit(name, "login", "basic");
  json j{{"access_token", token}, {"expires_in", config_.limits.token_ttl.count()}};
  return {200, j.dump(), false};
}

HttpResponse Service::auth_revoke(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  store_.revoke_token(caller.bearer);
  store_.audit(caller.user, "token.revoked", "");
  return {204, "", false};
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
    std::string_view body = req.body;
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
    while (!body.empty()) {
      const auto amp = body.find('&');
      const std::string_view pair = body.substr(0, amp);
      const auto eq = pair.find('=');
      if (eq != std::string_view::npos) {
        try {
          params[unescape(pair.substr(0, eq))] = unescape(pair.substr(eq + 1));
        } catch (const std::exception&) {
          throw invalid_request("Malformed form body");
        }
      }
      body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
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
  if (store_.locked(key, now)) throw CscError{403, "access_denied", "Client locked"};
  const OAuthClient* client = nullptr;
  for (const auto& c : config_.clients) {
    if (c.client_id == id) client = &c;
  }
  const bool ok = verify_password(secret, client != nullptr ? client->secret_hash : dummy_hash_) &&
                  client != nullptr;
  if (!ok) {
    store_.record_failure(key, "login", now, config_.limits.max_failures, config_.limits.lockout);
    store_.audit(key, "oauth2.failed", "wrong client secret");
    throw CscError{401, "invalid_client", "Client authentication failed"};
  }
  store_.clear_failures(key, "login");
  const std::string token = issue_token(client->user);
  store_.audit(client->user, "login", "oauth2 client " + id);
  json j{{"access_token", token},
         {"token_type", "Bearer"},
         {"expires_in", config_.limits.token_ttl.count()}};
  return {200, j.dump(), false};
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
  return {200, j.dump(), false};
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
  return {200, j.dump(), false};
}

void Service::check_otp(const ApplianceUser& u, const Secret* otp) {
  if (u.totp_secret.empty()) return;
  const auto now = Clock::now();
  std::optional<std::uint64_t> counter;
  if (otp != nullptr) {
    counter = totp_match(u.totp_secret, *otp, Clock::to_time_t(now), config_.limits.totp_window);
  }
  const bool fresh = counter && store_.accept_totp_counter(u.name, *counter);
  if (!fresh) {
    const bool locked = store_.record_failure(u.name, "otp", now, config_.limits.max_failures,
                                              config_.limits.lockout);
    store_.audit(
        u.name, "authorize.failed",
        std::string(counter ? "OTP reused" : "wrong OTP") + (locked ? "; user locked" : ""));
    throw CscError{400, "invalid_otp", counter ? "The OTP was already used" : "Invalid OTP"};
  }
  store_.clear_failures(u.name, "otp");
}

void Service::check_pin(const std::string& user_name, const HsmCredential& cred,
                        const Secret& pin) {
  const PinTagger::Tag tag = pin_tags_.tag(pin);
  bool ok = false;
  std::string why = "wrong PIN";
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
  if (!ok) {
    const bool locked = store_.record_failure(user_name, "pin", Clock::now(),
                                              config_.limits.max_failures, config_.limits.lockout);
    store_.audit(user_name, "authorize.failed", why + (locked ? "; user locked" : ""));
    throw CscError{400, "invalid_pin", "Invalid PIN"};
  }
  store_.clear_failures(user_name, "pin");
}

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

  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const HashAlgorithm alg = parse_hash_alg(body);
  const auto hashes = parse_hashes(body, alg, config_.limits.multisign);
  if (auto n = body.find("numSignatures"); n != body.end()) {
    if (!n->is_number_unsigned() || n->get<std::size_t>() != hashes.size()) {
      throw invalid_request("numSignatures must equal the number of hashes");
    }
  }
  const auto now = Clock::now();
  if (store_.locked(caller.user, now)) {
    store_.audit(caller.user, "authorize.refused", "user locked");
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  if (!pin) throw invalid_request("Missing PIN");
  check_otp(user(caller.user), otp ? &*otp : nullptr);
  check_pin(caller.user, hsm, *pin);

  const std::string txn = random_token();
  const auto txn_expires = now + config_.limits.transaction_ttl;
  const auto count = static_cast<std::int64_t>(hashes.size());
  store_.put_transaction(
      hash_hex(txn), {caller.user, caller.bearer, hsm.credential.id(), txn_expires,
                      static_cast<std::int64_t>(config_.limits.transaction_signatures) - count});
  const std::string sad = random_token();
  const auto expires = std::min(now + config_.limits.sad_ttl, txn_expires);
  store_.put_sad(hash_hex(sad),
                 {caller.user, caller.bearer, hsm.credential.id(),
                  std::string(remote::wire::hash_oid(alg)), hash_hex(txn), expires},
                 hashes);
  store_.audit(caller.user, "authorize",
               "credential " + hsm.credential.id() + ", " + std::to_string(count) + " hashes");
  json j{{"SAD", sad},
         {"expiresIn", std::chrono::duration_cast<std::chrono::seconds>(expires - now).count()}};
  return {200, j.dump(), false};
}

namespace {

// The SAD checks shared by extendTransaction and signHash. Every mismatch reads the same to the
// caller, so a SAD found for someone else reveals nothing.
SadRecord valid_sad(StateStore& store, const std::string& sad_hash, const std::string& user,
                    const std::string& bearer, const std::string& credential) {
  auto sad = store.sad(sad_hash);
  if (!sad || sad->user != user || sad->bearer != bearer || sad->credential != credential) {
    throw CscError{400, "invalid_request", "Invalid SAD"};
  }
  if (sad->expires <= Clock::now()) throw CscError{400, "invalid_request", "SAD expired"};
  return *sad;
}

}  // namespace

HttpResponse Service::credentials_extend(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  const json body = parse_body(req);
  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const SadRecord old = valid_sad(store_, hash_hex(string_field(body, "SAD")), caller.user,
                                  caller.bearer, hsm.credential.id());
  const HashAlgorithm alg = parse_hash_alg(body);
  const auto hashes = parse_hashes(body, alg, config_.limits.multisign);
  const auto txn = store_.transaction(old.transaction);
  const auto now = Clock::now();
  if (!txn || txn->expires <= now) throw CscError{400, "invalid_request", "Transaction expired"};
  if (store_.locked(caller.user, now)) {
    throw CscError{403, "access_denied", "Too many failed attempts: the user is locked"};
  }
  if (!store_.take_from_transaction(old.transaction, static_cast<std::int64_t>(hashes.size()))) {
    throw invalid_request("The authorization covers no more signatures: authorize again");
  }
  const std::string sad = random_token();
  const auto expires = std::min(now + config_.limits.sad_ttl, txn->expires);
  store_.put_sad(hash_hex(sad),
                 {caller.user, caller.bearer, hsm.credential.id(),
                  std::string(remote::wire::hash_oid(alg)), old.transaction, expires},
                 hashes);
  store_.audit(
      caller.user, "authorize.extend",
      "credential " + hsm.credential.id() + ", " + std::to_string(hashes.size()) + " hashes");
  json j{{"SAD", sad},
         {"expiresIn", std::chrono::duration_cast<std::chrono::seconds>(expires - now).count()}};
  return {200, j.dump(), false};
}

HttpResponse Service::signatures_sign_hash(const HttpRequest& req) {
  const Caller caller = authenticate(req);
  const json body = parse_body(req);
  const auto& hsm = owned_credential(caller, string_field(body, "credentialID"));
  const std::string sad_hash = hash_hex(string_field(body, "SAD"));
  const SadRecord sad =
      valid_sad(store_, sad_hash, caller.user, caller.bearer, hsm.credential.id());
  if (body.value("operationMode", std::string("S")) != "S") {
    throw invalid_request("Only synchronous operationMode S is supported");
  }
  const auto sign_alg = remote::wire::sign_from_oids(string_field(body, "signAlgo"),
                                                     body.value("hashAlgorithmOID", std::string()));
  if (!sign_alg) throw invalid_request("Invalid parameter signAlgo");
  if (is_ecdsa(*sign_alg) != (hsm.credential.cert.key_type == "EC")) {
    throw invalid_request("signAlgo does not fit the credential's key");
  }
  if (remote::wire::hash_oid(hash_of(*sign_alg)) != sad.hash_algorithm) {
    throw invalid_request("The hash algorithm differs from the authorized one");
  }
  const auto hashes = parse_hashes(body, hash_of(*sign_alg), config_.limits.multisign);
  if (!store_.consume(sad_hash, hashes)) {
    store_.audit(caller.user, "sign.refused", "hash not authorized by the SAD (or already signed)");
    throw CscError{400, "invalid_request",
                   "A hash is not authorized by this SAD or was already signed"};
  }

  // Spread the chunk over the HSM sessions; this worker waits, io threads never do.
  const std::size_t n = hashes.size();
  const std::size_t parts = std::min<std::size_t>(config_.limits.sign_threads, n);
  std::vector<Bytes> signatures(n);
  std::vector<std::future<void>> done;
  done.reserve(parts);
  for (std::size_t p = 0; p < parts; ++p) {
    auto task = std::make_shared<std::packaged_task<void()>>([&, p] {
      for (std::size_t i = p; i < n; i += parts) {
        signatures[i] = hsm.signer->sign_digest(*sign_alg, hashes[i], SignatureEncoding::Der);
      }
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
  if (failure) {
    store_.audit(caller.user, "sign.failed",
                 std::string(failure->name()) + ": " + failure->detail());
    if (failure->code() == ErrorCode::LoginRequired) {
      throw CscError{400, "invalid_request", "The HSM session was reset: authorize again"};
    }
    throw CscError{500, "server_error", "Signing failed: " + std::string(failure->name())};
  }
  json sigs = json::array();
  for (const auto& s : signatures) sigs.push_back(to_base64(s));
  store_.audit(caller.user, "sign",
               "credential " + hsm.credential.id() + ", " + std::to_string(n) + " signatures, " +
                   std::string(to_string(*sign_alg)));
  return {200, json{{"signatures", sigs}}.dump(), false};
}

}  // namespace kyso::appliance
