// Remote signing in the agent: the configured CSC services (RemoteSources), and Service's
// members that sign in to them (the password dialog). A job on a remote credential then goes
// through the signing desk (desk.cpp) like a token's.

#include "remote_source.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kyso/agent/service.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/platform_files.hpp"

namespace kyso::agent {
namespace {

using nlohmann::json;

std::string login_name(const firmware_config::RemoteService& svc) {
  if (!svc.username.empty()) return svc.username;
  // Not configured: the OS account's name, as most district services name their users.
  return platform::login_name();
}

bool same_service(const firmware_config::RemoteService& svc, const json& j) {
  return j.value("name", "") == svc.name && j.value("url", "") == svc.url &&
         j.value("username", "") == svc.username;
}

Credential credential_from(const firmware_config::RemoteService& svc, const std::string& remote_id,
                           const std::vector<Bytes>& certs) {
  Credential c;
  c.cert = parse_certificate(certs.front());
  c.chain.assign(certs.begin() + 1, certs.end());
  c.source = {"remote", svc.name, remote_id, svc.url};
  c.algorithms = algorithms_for_key(c.cert);
  return c;
}

}  // namespace

remote::AuthNeeds auth_needs(const Signer& signer) {
  return signer.needs();
}

void authorize(Signer& signer, std::optional<Secret> pin, std::optional<Secret> otp,
               std::span<const Bytes> digests) {
  signer.authorize({.pin = pin ? &*pin : nullptr, .otp = otp ? &*otp : nullptr}, digests);
}

remote::RemoteSigner* chunked(Signer& signer) noexcept {
  return dynamic_cast<remote::RemoteSigner*>(&signer);
}

struct RemoteSources::State {
  std::shared_ptr<remote::CscClient> client;
  std::shared_ptr<remote::CscAdapter> adapter;  // set while a session is believed live
  std::vector<Credential> credentials;          // listed at the last sign-in (or cached)
};

RemoteSources::RemoteSources(std::vector<firmware_config::RemoteService> services,
                             std::filesystem::path cache_file)
    : services_(std::move(services)), cache_file_(std::move(cache_file)) {
  for (std::size_t i = 0; i < services_.size(); ++i) states_.push_back(std::make_unique<State>());
  if (services_.empty()) return;
  // Certificates are public: the cache only saves a sign-in to see them after a restart.
  std::ifstream in(cache_file_);
  if (!in) return;
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("services") || !j["services"].is_array()) {
    spdlog::warn("remote credential cache {} is unreadable; ignored", cache_file_.string());
    return;
  }
  for (const auto& entry : j["services"]) {
    for (std::size_t i = 0; i < services_.size(); ++i) {
      if (!entry.is_object() || !same_service(services_[i], entry)) continue;
      try {
        for (const auto& c : entry.value("credentials", json::array())) {
          std::vector<Bytes> certs;
          for (const auto& b64 : c.at("certificates"))
            certs.push_back(from_base64(b64.get<std::string>()));
          if (certs.empty()) continue;
          states_[i]->credentials.push_back(
              credential_from(services_[i], c.at("id").get<std::string>(), certs));
        }
      } catch (const std::exception& e) {
        states_[i]->credentials.clear();
        spdlog::warn("remote credential cache entry for {} ignored: {}", services_[i].name,
                     e.what());
      }
    }
  }
}

RemoteSources::~RemoteSources() = default;

std::vector<Credential> RemoteSources::credentials() const {
  const std::lock_guard lock(mutex_);
  std::vector<Credential> out;
  for (const auto& s : states_) out.insert(out.end(), s->credentials.begin(), s->credentials.end());
  return out;
}

json RemoteSources::services_json() const {
  const std::lock_guard lock(mutex_);
  json arr = json::array();
  for (std::size_t i = 0; i < services_.size(); ++i) {
    arr.push_back({{"name", services_[i].name},
                   {"url", services_[i].url},
                   {"username", login_name(services_[i])},
                   {"signedIn", states_[i]->adapter != nullptr},
                   {"credentials", states_[i]->credentials.size()}});
  }
  return arr;
}

bool RemoteSources::signed_in(std::size_t i) const {
  const std::lock_guard lock(mutex_);
  return states_.at(i)->adapter != nullptr;
}

std::optional<std::size_t> RemoteSources::service_of(const Credential& cred) const {
  if (cred.source.kind != "remote") return std::nullopt;
  for (std::size_t i = 0; i < services_.size(); ++i) {
    if (services_[i].name == cred.source.name) return i;
  }
  return std::nullopt;
}

void RemoteSources::refresh(State& s, std::size_t i) {
  // Network first, without the lock: credentials.list must not wait for a slow service.
  std::shared_ptr<remote::CscAdapter> adapter;
  {
    const std::lock_guard lock(mutex_);
    adapter = s.adapter;
  }
  std::vector<Credential> listed;
  try {
    listed = adapter->credentials();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::RemoteAuthFailed) {
      const std::lock_guard lock(mutex_);
      s.adapter.reset();  // the session ended: the next job signs in again
    }
    throw;
  }
  for (auto& c : listed) c.source.module = services_[i].url;
  const std::lock_guard lock(mutex_);
  s.credentials = std::move(listed);
  try {
    save();
  } catch (const std::exception& e) {
    spdlog::warn("cannot write the remote credential cache: {}", e.what());
  }
}

void RemoteSources::sign_in(std::size_t i, const AskPassword& ask) {
  State& s = *states_.at(i);
  const auto& svc = services_[i];
  bool had_session = false;
  {
    const std::lock_guard lock(mutex_);
    had_session = s.adapter != nullptr;
  }
  if (had_session) {
    try {
      refresh(s, i);
      return;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::RemoteAuthFailed) throw;
      spdlog::info("remote service {}: session ended, signing in again", svc.name);
    }
  }
  remote::ClientOptions o;
  o.base_url = svc.url;
  o.ca_file = svc.ca_file;
  o.unavailable_wait = svc.unavailable_wait;
  auto client = std::make_shared<remote::CscClient>(o);
  // Unreachable (or not a CSC service) is said before any password is asked.
  client->info();
  {
    const Secret password = ask(svc);  // wiped when it goes out of scope
    client->login(login_name(svc), password);
  }
  {
    const std::lock_guard lock(mutex_);
    s.client = client;
    s.adapter = std::make_shared<remote::CscAdapter>(svc.name, client);
  }
  refresh(s, i);
  spdlog::info("remote service {}: signed in as {}", svc.name, login_name(svc));
}

std::shared_ptr<remote::RemoteSigner> RemoteSources::signer(const Credential& cred) {
  const auto i = service_of(cred);
  if (!i) throw Error(ErrorCode::CredentialNotFound, "not a remote credential: " + cred.id());
  const std::lock_guard lock(mutex_);
  const State& s = *states_[*i];
  if (!s.adapter) throw Error(ErrorCode::LoginRequired, "not signed in to " + services_[*i].name);
  for (const auto& c : s.credentials) {
    if (c.id() == cred.id() && c.source.serial == cred.source.serial) {
      return std::make_shared<remote::RemoteSigner>(s.adapter, c);
    }
  }
  throw Error(ErrorCode::CredentialNotFound,
              services_[*i].name + " no longer lists credential " + cred.source.serial);
}

std::size_t RemoteSources::round_trips(std::size_t i) const {
  std::shared_ptr<remote::CscAdapter> adapter;
  {
    const std::lock_guard lock(mutex_);
    adapter = states_.at(i)->adapter;
  }
  return adapter ? adapter->round_trips() : 0;
}

void RemoteSources::save() const {
  json services = json::array();
  for (std::size_t i = 0; i < services_.size(); ++i) {
    json creds = json::array();
    for (const auto& c : states_[i]->credentials) {
      json certs = json::array({to_base64(c.cert.der)});
      for (const auto& der : c.chain) certs.push_back(to_base64(der));
      creds.push_back({{"id", c.source.serial}, {"certificates", std::move(certs)}});
    }
    services.push_back({{"name", services_[i].name},
                        {"url", services_[i].url},
                        {"username", services_[i].username},
                        {"credentials", std::move(creds)}});
  }
  const auto tmp = cache_file_.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    platform::restrict_to_owner(tmp);
    out << json{{"version", 1}, {"services", std::move(services)}}.dump(1) << '\n';
  }
  std::filesystem::rename(tmp, cache_file_);
}

// ---- Service's remote members ----------------------------------------------------------------

namespace {

Dialog password_dialog(const firmware_config::RemoteService& svc, const std::string& origin,
                       Language lang) {
  const bool vi = lang == Language::Vi;
  Dialog d;
  d.title = vi ? "Kyso – Đăng nhập dịch vụ ký số từ xa" : "Kyso – Sign in to remote signing";
  d.description =
      (origin.empty() ? std::string() : (vi ? "Trang web: " : "Website: ") + origin + "\n") +
      (vi ? "Dịch vụ ký số từ xa: " : "Remote signing service: ") + svc.name + "\n" +
      (vi ? "Địa chỉ: " : "Address: ") + svc.url + "\n" + (vi ? "Tài khoản: " : "Account: ") +
      login_name(svc) + "\n\n" +
      (vi ? "Nhập mật khẩu tài khoản của bạn trên dịch vụ để dùng chứng thư số ở đó. Đăng nhập "
            "chưa ký gì: mỗi lần ký vẫn cần bạn xác nhận, mã PIN và mã OTP."
          : "Enter your account's password at the service to use your certificates there. "
            "Signing in signs nothing: every signing still needs your approval, PIN and OTP.");
  d.prompt = vi ? "Mật khẩu:" : "Password:";
  d.ok = vi ? "Đăng nhập" : "Sign in";
  d.cancel = vi ? "Hủy" : "Cancel";
  return d;
}

}  // namespace

bool Service::sign_in_remote(const std::string& origin, Language lang,
                             const std::atomic<bool>* cancel) {
  bool any = false;
  std::optional<Error> first;
  for (std::size_t i = 0; i < remote_->size(); ++i) {
    if (remote_->signed_in(i)) continue;
    try {
      remote_->sign_in(i, [&](const firmware_config::RemoteService& svc) {
        return pinentry_.get_pin(password_dialog(svc, origin, lang), cancel);
      });
      any = true;
    } catch (const Error& e) {
      audit_refusal(origin, {}, e.code(),
                    "sign-in to remote service " + remote_->service(i).name + ": " + e.detail());
      // The user's Cancel ends the request; a service that fails leaves the others a chance.
      if (e.code() == ErrorCode::UserCancelled || e.code() == ErrorCode::Timeout) throw;
      if (!first) first = e;
    }
  }
  if (!any && first) throw *first;
  return any;
}

std::shared_ptr<Signer> Service::remote_signer(const Credential& cred, const std::string& origin,
                                               Language lang, const std::atomic<bool>* cancel) {
  // A session that ended since the credential was listed is signed in again (its password).
  const std::size_t index = remote_->service_of(cred).value_or(0);
  remote_->sign_in(index, [&](const firmware_config::RemoteService& s) {
    return pinentry_.get_pin(password_dialog(s, origin, lang), cancel);
  });
  return remote_->signer(cred);
}

}  // namespace kyso::agent
