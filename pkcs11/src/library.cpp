#include "kyso/pkcs11/library.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "kyso/core/platform.hpp"
#include "kyso/pkcs11/usb.hpp"
#include "module.hpp"
#include "registry.hpp"

namespace kyso::pkcs11 {
namespace {

struct Candidate {
  std::string path;
  std::string source;
};

}  // namespace

Library::Library(ModuleConfig config)
    : timeouts_(config.timeouts), quirks_(std::move(config.quirks)) {
  std::vector<Candidate> candidates;
  for (const auto& p : config.paths) candidates.push_back({p, "config"});
  if (config.use_p11kit) {
    for (auto& p : detail::registry_module_paths()) candidates.push_back({std::move(p), "p11-kit"});
  }
  if (config.use_known) {
    const auto& table = config.known_tokens.empty() ? builtin_known_tokens() : config.known_tokens;
    for (auto& p : installed_known_modules(table)) {
      candidates.push_back({std::move(p), "known"});
    }
  }

  std::vector<std::string> seen;
  for (const auto& c : candidates) {
    std::error_code ec;
    const auto canonical =
        platform::path_utf8(std::filesystem::weakly_canonical(platform::utf8_path(c.path), ec));
    if (std::ranges::find(seen, canonical) != seen.end()) continue;
    seen.push_back(canonical);

    ModuleStatus st{.path = c.path,
                    .source = c.source,
                    .loaded = false,
                    .error = {},
                    .manufacturer = {},
                    .description = {},
                    .reloads = 0};
    try {
      auto m = detail::Module::load(c.path, timeouts_);
      st.loaded = true;
      st.reloads = m->generation();
      st.manufacturer =
          detail::fixed_string(m->info().manufacturerID, sizeof m->info().manufacturerID);
      st.description =
          detail::fixed_string(m->info().libraryDescription, sizeof m->info().libraryDescription);
      modules_.push_back(std::move(m));
      module_status_.push_back(status_.size());
    } catch (const Error& e) {
      st.error = e.detail();
    }
    status_.push_back(std::move(st));
  }
}

Library::~Library() = default;

std::vector<ModuleStatus> Library::modules() const {
  const std::lock_guard lock(mutex_);
  return status_;
}

bool Library::revive(std::size_t index) {
  const auto old = modules_[index];
  // Its tokens go with it: their sessions and handles belong to the stuck instance. The same
  // cards show up again through the new one as new Token objects, logged out.
  std::erase_if(known_tokens_, [&](const std::shared_ptr<Token>& t) {
    if (t->module() != old.get()) return false;
    t->mark_removed();
    return true;
  });
  auto& st = status_[module_status_[index]];
  try {
    auto fresh = detail::Module::load(old->path(), timeouts_);
    st.reloads = fresh->generation();
    st.error.clear();
    modules_[index] = std::move(fresh);
    return true;
  } catch (const Error& e) {
    st.error = e.detail();
    return false;
  }
}

std::shared_ptr<Token> Library::enumerate(const std::shared_ptr<detail::Module>& m,
                                          std::vector<std::shared_ptr<Token>>& present) {
  std::shared_ptr<Token> needs_reinit;
  CK_ULONG n = 0;
  if (m->invoke<&CK_FUNCTION_LIST::C_GetSlotList>(CK_BBOOL{CK_TRUE}, nullptr, &n) != CKR_OK) {
    return nullptr;
  }
  std::vector<CK_SLOT_ID> slots(n);
  if (n > 0 &&
      m->invoke<&CK_FUNCTION_LIST::C_GetSlotList>(CK_BBOOL{CK_TRUE}, slots.data(), &n) != CKR_OK) {
    return nullptr;
  }
  slots.resize(n);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO ti{};
    if (m->invoke<&CK_FUNCTION_LIST::C_GetTokenInfo>(slot, &ti) != CKR_OK) continue;
    if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0) continue;  // an empty slot, nothing to use
    // The same physical token keeps its Token object (login, sessions) across refreshes
    // and re-insertion, even in another slot.
    const std::string identity = m->path() + "\n" +
                                 detail::fixed_string(ti.serialNumber, sizeof ti.serialNumber) +
                                 "\n" + detail::fixed_string(ti.label, sizeof ti.label);
    auto it = std::ranges::find_if(
        known_tokens_, [&](const std::shared_ptr<Token>& t) { return t->identity() == identity; });
    if (it != known_tokens_.end()) {
      const auto* q = (*it)->quirks();
      if ((*it)->removed() && q != nullptr && q->reinitialize_after_hotplug) needs_reinit = *it;
      (*it)->reattach(slot);
      present.push_back(*it);
    } else {
      const std::string manufacturer =
          detail::fixed_string(ti.manufacturerID, sizeof ti.manufacturerID);
      const std::string model = detail::fixed_string(ti.model, sizeof ti.model);
      const Version firmware{ti.firmwareVersion.major, ti.firmwareVersion.minor};
      const TokenQuirks* quirks = nullptr;
      for (const auto& q : quirks_) {
        if (q.matches(manufacturer, model, firmware)) {
          quirks = &q;
          break;
        }
      }
      auto t = std::make_shared<Token>(m, slot, identity, quirks);
      known_tokens_.push_back(t);
      present.push_back(std::move(t));
    }
  }
  return needs_reinit;
}

std::vector<std::shared_ptr<Token>> Library::tokens() {
  const std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Token>> present;
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    // A module that stopped answering is left behind; a fresh copy takes its place.
    if (modules_[i]->quarantined() && !revive(i)) continue;
    const auto& m = modules_[i];
    const std::size_t before = present.size();
    if (enumerate(m, present) == nullptr) continue;
    // A token whose middleware fails after hot-plug came back: start the module afresh.
    // Every token of this module loses its sessions and login (they would be stale anyway).
    present.resize(before);
    for (const auto& t : known_tokens_) {
      if (t->module() == m.get()) t->mark_removed();
    }
    try {
      m->reinitialize();
    } catch (const Error&) {
      continue;  // its tokens stay absent until the module works again
    }
    (void)enumerate(m, present);
  }
  for (const auto& t : known_tokens_) {
    if (std::ranges::find(present, t) == present.end()) t->mark_removed();
  }
  return present;
}

std::vector<Credential> Library::credentials() {
  std::vector<Credential> out;
  for (const auto& t : tokens()) {
    try {
      auto creds = t->credentials();
      std::ranges::move(creds, std::back_inserter(out));
    } catch (const Error&) {
      // A token that fails to list (removed meanwhile) simply contributes nothing.
    }
  }
  return out;
}

std::shared_ptr<Signer> Library::signer(std::string_view credential_id) {
  for (const auto& t : tokens()) {
    std::vector<Credential> creds;
    try {
      creds = t->credentials();
    } catch (const Error&) {
      continue;
    }
    for (const auto& c : creds) {
      if (c.id() == credential_id) return t->signer(c);
    }
  }
  throw Error(ErrorCode::CredentialNotFound,
              "no present token holds credential " + std::string(credential_id));
}

std::shared_ptr<Token> Library::token(std::string_view serial_or_label) {
  for (const auto& t : tokens()) {
    const TokenInfo info = t->info();
    if (info.serial == serial_or_label || info.label == serial_or_label) return t;
  }
  throw Error(ErrorCode::TokenNotFound, "no token '" + std::string(serial_or_label) + "'");
}

}  // namespace kyso::pkcs11
