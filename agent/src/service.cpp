#include "kyso/agent/service.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>

#include "kyso/config/token_profiles.hpp"
#include "kyso/core/secret.hpp"
#include "ordered.hpp"
#include "remote_source.hpp"

namespace kyso::agent {
namespace {

constexpr std::size_t kMaxTitleBytes = 200;
constexpr std::size_t kDialogTitles = 5;

/// Control characters out, at most kMaxTitleBytes, never cutting a UTF-8 sequence.
std::string clean_title(std::string_view in) {
  std::string out;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  if (out.size() > kMaxTitleBytes) {
    std::size_t cut = kMaxTitleBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0U) == 0x80U) --cut;
    out.resize(cut);
    out += "…";
  }
  return out;
}

bool looks_hex(std::string_view s) {
  return !s.empty() && s.size() % 2 == 0 && std::ranges::all_of(s, [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

Bytes decode_digest(std::string_view s, std::size_t want) {
  // A hex string has exactly twice the digest's length; anything else is base64.
  if (s.size() == want * 2 && looks_hex(s)) return from_hex(s);
  std::string b64(s);
  std::ranges::replace(b64, '-', '+');
  std::ranges::replace(b64, '_', '/');
  while (b64.size() % 4 != 0) b64.push_back('=');
  return from_base64(b64);
}

std::string holder(const CertificateInfo& c) {
  std::string s = c.common_name;
  if (!c.uids.empty()) s += " (" + c.uids.front().raw + ")";
  return s;
}

const RolePin* pin_for(const config::AgentConfig& cfg, Role role) {
  const auto it = cfg.roles.find(role);
  return it == cfg.roles.end() ? nullptr : &it->second;
}

std::filesystem::path state_dir(const config::AgentConfig& cfg) {
  auto dir = cfg.state_dir.empty() ? default_state_dir() : cfg.state_dir;
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  return dir;
}

/// IT's token profiles (tokens.toml) when configured, else the compiled-in Vietnamese table:
/// which USB tokens exist, which modules drive them, what their firmware gets wrong.
std::vector<config::TokenProfile> token_profiles(const config::AgentConfig& cfg) {
  return cfg.token_profiles.empty() ? config::default_token_profiles()
                                    : config::load_token_profiles(cfg.token_profiles);
}

std::vector<pkcs11::KnownToken> load_known_tokens(const config::AgentConfig& cfg) {
  return config::to_known_tokens(token_profiles(cfg));
}

/// The profiles' token quirks apply to every module, configured or discovered.
pkcs11::ModuleConfig module_config(const config::AgentConfig& cfg,
                                   const std::vector<pkcs11::KnownToken>& table) {
  return {.paths = cfg.pkcs11_modules,
          .use_p11kit = cfg.system_modules,
          .use_known = cfg.system_modules,
          .known_tokens = table,
          .quirks = config::to_token_quirks(token_profiles(cfg))};
}

}  // namespace

Item parse_item(const nlohmann::json& j, Transfers* transfers) {
  if (!j.is_object()) throw Error(ErrorCode::BadRequest, "item must be an object");
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string())
    throw Error(ErrorCode::BadRequest, "item.type missing");
  const auto t = type->get<std::string>();
  if (t == "xml" || t == "pdf" || t == "cms") {
    Item item;
    item.type = t == "xml" ? ItemType::Xml : t == "pdf" ? ItemType::Pdf : ItemType::Cms;
    item.document = parse_document(item.type, j, transfers);
    item.digest = item.document->sha256;
    const auto title = j.find("title");
    if (title != j.end() && !title->is_string()) {
      throw Error(ErrorCode::BadRequest, "item.title must be a string");
    }
    item.title = dialog_label(*item.document) +
                 clean_title(title == j.end() ? "" : title->get_ref<const std::string&>());
    return item;
  }
  if (t != "hash") throw Error(ErrorCode::BadRequest, "unknown item type '" + t + "'");
  Item item;
  const auto ha = j.find("hashAlgorithm");
  if (ha == j.end() || !ha->is_string()) {
    throw Error(ErrorCode::BadRequest, "item.hashAlgorithm missing");
  }
  const auto h = parse_hash_algorithm(ha->get<std::string>());
  if (!h) throw Error(ErrorCode::BadRequest, "unknown hashAlgorithm " + ha->get<std::string>());
  item.hash_algorithm = *h;
  const auto hash = j.find("hash");
  if (hash == j.end() || !hash->is_string())
    throw Error(ErrorCode::BadRequest, "item.hash missing");
  const auto want = digest_size(*h);
  if (hash->get_ref<const std::string&>().size() > want * 4) {
    throw Error(ErrorCode::DigestInvalid, "item.hash too long");
  }
  try {
    item.digest = decode_digest(hash->get_ref<const std::string&>(), want);
  } catch (const Error&) {
    throw Error(ErrorCode::DigestInvalid, "item.hash is neither hex nor base64");
  }
  if (item.digest.size() != want) {
    throw Error(ErrorCode::DigestInvalid, "item.hash has " + std::to_string(item.digest.size()) +
                                              " bytes, " + std::string(to_string(*h)) + " needs " +
                                              std::to_string(want));
  }
  if (const auto title = j.find("title"); title != j.end()) {
    if (!title->is_string()) throw Error(ErrorCode::BadRequest, "item.title must be a string");
    item.title = clean_title(title->get_ref<const std::string&>());
  }
  return item;
}

nlohmann::json error_json(const Error& e) {
  nlohmann::json j = {
      {"code", std::string(e.name())},
      {"message",
       {{"vi", std::string(e.message(Language::Vi))},
        {"en", std::string(e.message(Language::En))}}},
      {"retriable", e.retriable()},
  };
  if (!e.detail().empty()) j["detail"] = e.detail();
  return j;
}

Service::Service(config::AgentConfig config)
    : config_(std::move(config)),
      known_tokens_(load_known_tokens(config_)),
      library_(std::make_unique<pkcs11::Library>(module_config(config_, known_tokens_))),
      pairings_(state_dir(config_) / "pairings.json"),
      audit_(std::make_unique<AuditLog>(state_dir(config_) / "audit.db")),
      pinentry_(config_.pinentry, config_.limits.approval_timeout),
      remote_(std::make_unique<RemoteSources>(config_.remote,
                                              state_dir(config_) / "remote-credentials.json")) {
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

bool Service::try_begin_job() noexcept {
  bool expected = false;
  return busy_.compare_exchange_strong(expected, true);
}

void Service::end_job() noexcept {
  busy_ = false;
}

void Service::audit_refusal(const std::string& origin, const std::string& role, ErrorCode code,
                            const std::string& detail) noexcept {
  try {
    audit_->append(AuditRow{.event = "refusal",
                            .origin = origin,
                            .role = role,
                            .credential_id = {},
                            .digest = {},
                            .result = std::string(code_name(code)),
                            .detail = detail});
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

nlohmann::json Service::list_credentials(const nlohmann::json& params, const std::string& origin,
                                         Language lang) {
  std::optional<Role> role;
  std::optional<SubjectKind> kind;
  bool valid_now = false;
  if (!params.is_object()) throw Error(ErrorCode::BadRequest, "params must be an object");
  if (const auto r = params.find("role"); r != params.end()) {
    if (!r->is_string() || !(role = parse_role(r->get<std::string>()))) {
      throw Error(ErrorCode::BadRequest, "role must be teacher, principal or seal");
    }
  }
  if (const auto k = params.find("kind"); k != params.end()) {
    if (*k == "person")
      kind = SubjectKind::Person;
    else if (*k == "organization")
      kind = SubjectKind::Organization;
    else
      throw Error(ErrorCode::BadRequest, "kind must be person or organization");
  }
  if (const auto v = params.find("validNow"); v != params.end()) {
    if (!v->is_boolean()) throw Error(ErrorCode::BadRequest, "validNow must be a boolean");
    valid_now = v->get<bool>();
  }
  if (const auto si = params.find("signIn"); si != params.end()) {
    if (!si->is_boolean()) throw Error(ErrorCode::BadRequest, "signIn must be a boolean");
    // Only on request: listing alone never opens a dialog.
    if (si->get<bool>() && !remote_->empty()) {
      if (!try_begin_job()) throw Error(ErrorCode::Busy, "another dialog is open");
      struct End {
        Service* s;
        ~End() { s->end_job(); }
      } end{this};
      sign_in_remote(origin, lang, nullptr);
    }
  }
  std::vector<Credential> creds;
  if (role) {
    for (auto& l : credentials_for(*role, nullptr)) creds.push_back(std::move(l.credential));
  } else {
    creds = library_->credentials();
    for (auto& c : remote_->credentials()) creds.push_back(std::move(c));
  }
  const auto now = std::chrono::system_clock::now();
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : creds) {
    if (kind && c.cert.kind != *kind) continue;
    if (valid_now && !c.cert.valid_at(now)) continue;
    nlohmann::json j = c;
    nlohmann::json roles = nlohmann::json::array();
    for (auto r : {Role::Teacher, Role::Principal, Role::Seal}) {
      if (role_accepts(r, c.cert, pin_for(config_, r))) roles.push_back(std::string(to_string(r)));
    }
    j["roles"] = roles;
    const auto g = guess_role(c.cert);
    j["suggestedRole"] = g ? nlohmann::json(std::string(to_string(*g))) : nlohmann::json(nullptr);
    arr.push_back(std::move(j));
  }
  nlohmann::json result = {{"credentials", arr}};
  if (!remote_->empty()) result["remoteServices"] = remote_->services_json();
  return result;
}

void Service::pair(const std::string& origin, const std::string& code, Language lang,
                   const std::atomic<bool>* abort) {
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
  pairings_.add(origin);
  audit_->append(AuditRow{.event = "pairing",
                          .origin = origin,
                          .role = {},
                          .credential_id = {},
                          .digest = {},
                          .result = "ok",
                          .detail = {}});
}

Located Service::choose(const SignJob& job, const std::atomic<bool>* cancel) {
  std::string why;
  auto fits = credentials_for(job.role, &why);
  // Nothing present fits: a remote service not signed in yet may hold it (its password dialog).
  const bool found =
      job.credential_id
          ? std::ranges::any_of(
                fits, [&](const Located& l) { return l.credential.id() == *job.credential_id; })
          : !fits.empty();
  if (!found && sign_in_remote(job.origin, job.language, cancel)) {
    fits = credentials_for(job.role, &why);
  }
  if (job.credential_id) {
    const auto it = std::ranges::find_if(
        fits, [&](const Located& l) { return l.credential.id() == *job.credential_id; });
    if (it != fits.end()) return *it;
    // Present but not for this role, or not present at all?
    auto present = library_->credentials();
    for (auto& c : remote_->credentials()) present.push_back(std::move(c));
    for (const auto& c : present) {
      if (c.id() == *job.credential_id) {
        throw Error(ErrorCode::RoleMismatch, "credential " + *job.credential_id +
                                                 " may not sign as " +
                                                 std::string(to_string(job.role)));
      }
    }
    throw Error(ErrorCode::CredentialNotFound,
                "no present token holds credential " + *job.credential_id);
  }
  if (fits.empty()) throw Error(ErrorCode::RoleNoCredential, why);
  return fits.front();
}

Dialog Service::sign_dialog(const SignJob& job, const Credential& cred, bool with_pin) const {
  const bool vi = job.language == Language::Vi;
  const auto untitled = [&](std::size_t i) {
    return (vi ? "(không tên) #" : "(untitled) #") + std::to_string(i + 1);
  };
  std::string what;
  if (!job.batch) {
    what = (vi ? "Văn bản: " : "Document: ") +
           (job.items[0].title.empty() ? untitled(0) : job.items[0].title);
  } else {
    const auto n = job.items.size();
    what =
        vi ? "Ký " + std::to_string(n) + " văn bản:" : "Sign " + std::to_string(n) + " documents:";
    for (std::size_t i = 0; i < std::min(n, kDialogTitles); ++i) {
      what += "\n  • " + (job.items[i].title.empty() ? untitled(i) : job.items[i].title);
    }
    if (n > kDialogTitles) {
      what += vi ? "\n  … và " + std::to_string(n - kDialogTitles) + " văn bản khác"
                 : "\n  … and " + std::to_string(n - kDialogTitles) + " more";
    }
  }
  Dialog d;
  d.title = vi ? "Kyso – Xác nhận ký số" : "Kyso – Confirm signing";
  d.description =
      (vi ? "Trang web: " : "Website: ") + job.origin + "\n" + (vi ? "Vai trò: " : "Role: ") +
      std::string(role_label(job.role, job.language)) + "\n" + (vi ? "Người ký: " : "Signer: ") +
      holder(cred.cert) + "\n" + (vi ? "Cấp bởi: " : "Issued by: ") +
      (cred.cert.issuer_common_name.empty() ? cred.cert.issuer : cred.cert.issuer_common_name) +
      "\n\n" + what;
  if (with_pin) {
    d.description += vi ? "\n\nNhập mã PIN của token để ký." : "\n\nEnter the token's PIN to sign.";
    d.prompt = vi ? "Mã PIN:" : "PIN:";
  }
  d.ok = vi ? "Ký" : "Sign";
  d.cancel = vi ? "Hủy" : "Cancel";
  return d;
}

void Service::audit_job_refusal(const SignJob& job, const Error& e,
                                const std::string& credential_id) noexcept {
  try {
    audit_->append(AuditRow{.event = "refusal",
                            .origin = job.origin,
                            .role = std::string(to_string(job.role)),
                            .credential_id = credential_id,
                            .digest = {},
                            .result = std::string(e.name()),
                            .detail = e.detail()});
  } catch (...) {
    // Reported to the page anyway.
  }
}

void Service::audit_approval(const SignJob& job, const Credential& cred,
                             std::span<const Bytes> digests, const std::string& how) {
  // The approval covers exactly these digests: record them as one value.
  std::string all;
  for (const auto& d : digests) all.append(d.begin(), d.end());
  const auto* p = reinterpret_cast<const std::uint8_t*>(all.data());
  audit_->append(AuditRow{.event = "approval",
                          .origin = job.origin,
                          .role = std::string(to_string(job.role)),
                          .credential_id = cred.id(),
                          .digest = to_hex(sha256({p, all.size()})),
                          .result = "ok",
                          .detail = std::to_string(job.items.size()) + " item(s), " + how});
}

void Service::approve_and_log_in(const SignJob& job, const Credential& cred, Signer& signer,
                                 std::span<const Bytes> digests, const std::atomic<bool>& cancel) {
  try {
    const AuthKind auth = signer.auth_required();
    if (auth == AuthKind::Pin) {
      Secret pin = pinentry_.get_pin(sign_dialog(job, cred, true), &cancel);
      signer.authorize(&pin, digests);  // exactly one C_Login; never retried here
    } else {
      if (!pinentry_.confirm(sign_dialog(job, cred, false), &cancel)) {
        throw Error(ErrorCode::UserCancelled, "the user did not approve");
      }
      if (auth == AuthKind::ProtectedPath) signer.authorize(nullptr, digests);
    }
  } catch (const Error& e) {
    audit_job_refusal(job, e, cred.id());
    throw;
  }
}

SignAlgorithm Service::choose_algorithm(const SignJob& job, const Credential& cred,
                                        std::optional<HashAlgorithm> hash) {
  const SignAlgorithm alg =
      job.algorithm.value_or(default_algorithm(cred.cert, hash.value_or(HashAlgorithm::Sha256)));
  if (hash && hash_of(alg) != *hash) {
    throw Error(ErrorCode::BadRequest, "algorithm " + std::string(to_string(alg)) +
                                           " does not match hashAlgorithm " +
                                           std::string(to_string(*hash)));
  }
  if (std::ranges::find(cred.algorithms, alg) == cred.algorithms.end()) {
    throw Error(ErrorCode::AlgorithmUnsupported,
                std::string(to_string(alg)) + " is not available for this key/token");
  }
  return alg;
}

SignOutcome Service::sign(const SignJob& job, const std::atomic<bool>& cancel,
                          const Progress& progress) {
  if (job.items.empty()) throw Error(ErrorCode::BadRequest, "nothing to sign");
  if (job.items.front().document) return sign_documents(job, cancel, progress);
  const std::string role_name(to_string(job.role));
  auto refuse = [&](const Error& e, const std::string& cred_id) {
    audit_job_refusal(job, e, cred_id);
  };

  Located located;
  SignOutcome out;
  try {
    located = choose(job, &cancel);
    const Credential& cred = located.credential;
    out.credential = cred;
    check_certificate(cred);  // before the user is asked anything
    const HashAlgorithm h = job.items.front().hash_algorithm;
    if (std::ranges::any_of(job.items, [&](const Item& i) { return i.hash_algorithm != h; })) {
      throw Error(ErrorCode::BadRequest, "all items of a batch must use the same hashAlgorithm");
    }
    out.algorithm = choose_algorithm(job, cred, h);
  } catch (const Error& e) {
    refuse(e, located.credential.id());
    throw;
  }

  if (!located.token) return sign_remote(job, std::move(out), cancel, progress);
  const Credential& cred = out.credential;
  auto signer = located.token->signer(cred);
  std::vector<Bytes> digests;
  digests.reserve(job.items.size());
  for (const auto& i : job.items) digests.push_back(i.digest);

  // The token is logged out when the job ends, whatever happens: the next request needs the
  // user again, and no PIN stays usable behind their back.
  struct LogoutGuard {
    std::shared_ptr<pkcs11::Token> token;
    ~LogoutGuard() { token->logout(); }
  } guard{located.token};

  approve_and_log_in(job, cred, *signer, digests, cancel);

  std::string how(to_string(out.algorithm));
  if (const auto note = signer->authorization_note(); !note.empty())
    how += ", " + std::string(note);
  audit_approval(job, cred, digests, how);

  // Lanes, each on its own session, keep the token busy; the calling thread audits what they
  // signed, in item order, and only then reports it (events, summary).
  detail::SignLoop loop{
      .items = digests.size(),
      .cancel = &cancel,
      .sign =
          [&](std::size_t i, SignResult& r) {
            r.signature = signer->sign_digest(out.algorithm, digests[i], job.encoding);
          },
      .digest = [&](std::size_t i) { return std::span<const std::uint8_t>(digests[i]); },
      .detail = {},
      .withhold = {}};
  out.cancelled =
      detail::sign_in_order(loop, *audit_, job.origin, role_name, cred.id(), out.results, progress);
  return out;
}

}  // namespace kyso::agent
