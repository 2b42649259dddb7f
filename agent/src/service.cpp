#include "kyso/agent/service.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>

#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/firmware_config/token_profiles.hpp"
#include "remote_source.hpp"

namespace kyso::agent {
namespace {

const RolePin* pin_for(const firmware_config::AgentConfig& cfg, Role role) {
  const auto it = cfg.roles.find(role);
  return it == cfg.roles.end() ? nullptr : &it->second;
}

/// The state directory, settled once: the configured one, else the default; this user's, 0700.
firmware_config::AgentConfig settle_state_dir(firmware_config::AgentConfig cfg) {
  if (cfg.state_dir.empty()) cfg.state_dir = default_state_dir();
  check_state_dir(cfg.state_dir);
  return cfg;
}

std::string six_digit_code() {
  std::uint32_t r = 0;
  random_bytes({reinterpret_cast<std::uint8_t*>(&r), sizeof r});
  auto s = std::to_string(r % 1000000U);
  s.insert(0, 6 - s.size(), '0');
  return s.substr(0, 3) + " " + s.substr(3);
}

/// IT's token profiles (tokens.toml) when configured, else the compiled-in Vietnamese table:
/// which USB tokens exist, which modules drive them.
std::vector<firmware_config::TokenProfile> token_profiles(const firmware_config::AgentConfig& cfg) {
  return cfg.token_profiles.empty() ? firmware_config::default_token_profiles()
                                    : firmware_config::load_token_profiles(cfg.token_profiles);
}

std::vector<pkcs11::KnownToken> load_known_tokens(const firmware_config::AgentConfig& cfg) {
  return firmware_config::to_known_tokens(token_profiles(cfg));
}

pkcs11::ModuleConfig module_config(const firmware_config::AgentConfig& cfg,
                                   const std::vector<pkcs11::KnownToken>& table) {
  return {.paths = cfg.pkcs11_modules,
          .use_p11kit = cfg.system_modules,
          .use_known = cfg.system_modules,
          .known_tokens = table,
          // The profiles' workarounds for known token firmware, as `kyso tokens` shows them.
          .quirks = firmware_config::to_token_quirks(token_profiles(cfg)),
          .timeouts = {.quick = cfg.pkcs11_call_timeout, .sign = cfg.pkcs11_sign_timeout}};
}

}  // namespace

Service::Service(firmware_config::AgentConfig config)
    : config_(settle_state_dir(std::move(config))),
      known_tokens_(load_known_tokens(config_)),
      library_(std::make_unique<pkcs11::Library>(module_config(config_, known_tokens_))),
      pairings_(config_.state_dir / "pairings.json"),
      audit_(std::make_unique<AuditLog>(config_.state_dir / "audit.db")),
      pinentry_(config_.pinentry, config_.limits.approval_timeout),
      remote_(std::make_unique<RemoteSources>(config_.remote,
                                              config_.state_dir / "remote-credentials.json")) {
  // IT's list compared in the same form as the browser's Origin and the pairings.
  for (auto& o : config_.allowed_origins) o = normalize_origin(o);
}

Service::~Service() = default;

bool Service::allow_listed(std::string_view origin) const {
  return std::ranges::find(config_.allowed_origins, normalize_origin(origin)) !=
         config_.allowed_origins.end();
}

bool Service::trusted(std::string_view origin) const {
  return allow_listed(origin) || pairings_.contains(origin);
}

void Service::audit_refusal(const std::string& origin, const std::string& role, ErrorCode code,
                            const std::string& detail) noexcept {
  try {
    const AuditRow row{.event = "refusal",
                       .origin = origin,
                       .role = role,
                       .credential_id = {},
                       .digest = {},
                       .result = std::string(code_name(code)),
                       .detail = detail};
    // A page nobody trusts can send thousands a second: counted, one row per interval.
    if (trusted(origin)) {
      audit_->append(row);
    } else {
      audit_->refused(row);
    }
  } catch (...) {
    // The refusal itself already happened; a full disk must not turn it into a crash.
  }
}

std::vector<Located> Service::credentials_for(Role role, std::string* why_none) {
  std::vector<Located> all;
  const auto tokens = library_->tokens();
  for (const auto& t : tokens) {
    try {
      for (auto& c : t->credentials()) all.push_back({t, std::move(c)});
    } catch (const Error&) {
      // A token removed while listing contributes nothing.
    }
  }
  // Remote credentials listed at a sign-in (no network here), after the tokens'.
  for (auto& c : remote_->credentials()) all.push_back({nullptr, std::move(c)});
  const RolePin* pin = pin_for(config_, role);
  std::vector<Located> out;
  std::size_t kind_ok = 0;
  for (auto& l : all) {
    if (role_accepts(role, l.credential.cert, nullptr)) ++kind_ok;
    if (role_accepts(role, l.credential.cert, pin)) out.push_back(std::move(l));
  }
  // The role's most likely holder first (a "Hiệu trưởng" certificate for principal), then the
  // ones valid now.
  const auto now = std::chrono::system_clock::now();
  std::ranges::stable_sort(out, [&](const Located& a, const Located& b) {
    const auto key = [&](const Located& l) {
      return std::pair(guess_role(l.credential.cert) == role, l.credential.cert.valid_at(now));
    };
    return key(a) > key(b);
  });
  if (out.empty() && why_none != nullptr) {
    const std::string need = role == Role::Seal ? "an organization certificate (UID MST:/MNS:)"
                                                : "a personal certificate (UID CCCD:/CMND:/HC:)";
    *why_none = "role " + std::string(to_string(role)) + " needs " + need + "; ";
    if (tokens.empty() && all.empty()) {
      *why_none += "no token is plugged in";
      if (!remote_->empty()) *why_none += " and no remote signing service lists one";
    } else if (kind_ok > 0) {
      *why_none += std::to_string(kind_ok) +
                   " certificate(s) of the right kind are present but IT's configuration pins "
                   "this role to other certificates or issuers";
    } else {
      *why_none += "none of the " + std::to_string(all.size()) + " certificate(s) on " +
                   std::to_string(tokens.size()) + " token(s) is one";
    }
  }
  return out;
}

CredentialList Service::list_credentials(const CredentialQuery& q, const std::string& origin,
                                         Language lang, const std::atomic<bool>* cancel) {
  // Only on request: listing alone never opens a dialog.
  if (q.sign_in && !remote_->empty()) {
    const JobSlot slot(busy_);
    sign_in_remote(origin, lang, cancel);
  }
  std::vector<Credential> creds;
  if (q.role) {
    for (auto& l : credentials_for(*q.role, nullptr)) creds.push_back(std::move(l.credential));
  } else {
    creds = library_->credentials();
    for (auto& c : remote_->credentials()) creds.push_back(std::move(c));
  }
  const auto now = std::chrono::system_clock::now();
  CredentialList out;
  for (auto& c : creds) {
    if (q.kind && c.cert.kind != *q.kind) continue;
    if (q.valid_now && !c.cert.valid_at(now)) continue;
    ListedCredential l;
    for (auto r : {Role::Teacher, Role::Principal, Role::Seal}) {
      if (role_accepts(r, c.cert, pin_for(config_, r))) l.roles.push_back(r);
    }
    l.suggested = guess_role(c.cert);
    l.credential = std::move(c);
    out.credentials.push_back(std::move(l));
  }
  if (!remote_->empty()) out.remote_services = remote_->services_json();
  return out;
}

void Service::pair(const std::string& origin, Language lang, const std::atomic<bool>* abort,
                   const std::function<void(const std::string& code)>& announce) {
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock(cooldown_mutex_);
    // Forgotten once quiet for as long as the longest cooldown.
    std::erase_if(pair_cooldown_,
                  [&](const auto& e) { return e.second.until + kPairCooldownMax <= now; });
    if (const auto it = pair_cooldown_.find(origin);
        it != pair_cooldown_.end() && now < it->second.until) {
      const auto left = std::chrono::ceil<std::chrono::seconds>(it->second.until - now).count();
      throw Error(ErrorCode::PairCooldown, "the last pairing dialog of " + origin +
                                               " was not confirmed; pairing again in " +
                                               std::to_string(left) + " s");
    }
  }
  // A hostile page cannot hold up signing with a dialog nobody answers, nor reopen the dialog
  // at once after each Cancel (approval fatigue): pairing has its own slot, and an unconfirmed
  // dialog, however it ended, refuses the origin's pairs for a while.
  const JobSlot slot(pairing_busy_, "another pairing dialog is open");
  bool confirmed = false;
  const struct CoolDown {
    Service& svc;
    const std::string& origin;
    const bool& confirmed;
    ~CoolDown() {
      const std::lock_guard lock(svc.cooldown_mutex_);
      if (confirmed) {
        svc.pair_cooldown_.erase(origin);
        return;
      }
      auto& c = svc.pair_cooldown_[origin];
      auto wait = std::chrono::seconds(kPairCooldownFirst);
      for (int i = 0; i < c.strikes && wait < kPairCooldownMax; ++i) wait *= 4;
      c.strikes = std::min(c.strikes + 1, 16);
      c.until = std::chrono::steady_clock::now() + std::min(wait, kPairCooldownMax);
    }
  } cool_down{*this, origin, confirmed};
  const std::string code = six_digit_code();
  announce(code);
  const bool vi = lang == Language::Vi;
  Dialog d;
  d.title = vi ? "Kyso – Ghép nối trang web" : "Kyso – Pair a website";
  d.description =
      vi ? "Trang web " + origin +
               " muốn dùng Kyso để ký số.\n\nChỉ xác nhận nếu trang web đang hiển thị đúng mã:\n\n"
               "        " +
               code + "\n\nNếu bạn không mở trang này, hãy bấm Hủy."
         : "The website " + origin +
               " wants to use Kyso for digital signatures.\n\nConfirm only if the website shows "
               "exactly this code:\n\n        " +
               code + "\n\nIf you did not open this website, press Cancel.";
  d.ok = vi ? "Ghép nối" : "Pair";
  d.cancel = vi ? "Hủy" : "Cancel";
  bool ok = false;
  try {
    ok = pinentry_.confirm(d, abort);
  } catch (const Error& e) {
    audit_refusal(origin, {}, e.code(), "pairing dialog");
    throw;
  }
  if (!ok) {
    audit_refusal(origin, {}, ErrorCode::UserCancelled, "pairing dialog");
    throw Error(ErrorCode::UserCancelled, "the user did not confirm the pairing");
  }
  confirmed = true;
  pairings_.add(origin);
  audit_->append(AuditRow{.event = "pairing",
                          .origin = origin,
                          .role = {},
                          .credential_id = {},
                          .digest = {},
                          .result = "ok",
                          .detail = {}});
}

}  // namespace kyso::agent
