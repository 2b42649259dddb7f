#include "kyso/pkcs11/token.hpp"

#include <openssl/x509v3.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "module.hpp"
#include "objects.hpp"
#include "session_pool.hpp"
#include "token_signer.hpp"

namespace kyso::pkcs11 {
namespace {

using detail::find_objects;
using detail::Module;
using detail::read_attribute;

// DigestInfo prefixes (RFC 8017, 9.2 note 1): CKM_RSA_PKCS signs DigestInfo || digest.
constexpr std::array<unsigned char, 19> kSha256Prefix{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                      0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                      0x01, 0x05, 0x00, 0x04, 0x20};
constexpr std::array<unsigned char, 19> kSha384Prefix{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                      0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                      0x02, 0x05, 0x00, 0x04, 0x30};
constexpr std::array<unsigned char, 19> kSha512Prefix{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                      0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                      0x03, 0x05, 0x00, 0x04, 0x40};

const std::array<unsigned char, 19>& digest_info_prefix(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::Sha384:
      return kSha384Prefix;
    case HashAlgorithm::Sha512:
      return kSha512Prefix;
    case HashAlgorithm::Sha256:
      break;
  }
  return kSha256Prefix;
}

CK_MECHANISM_TYPE ck_hash(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::Sha384:
      return CKM_SHA384;
    case HashAlgorithm::Sha512:
      return CKM_SHA512;
    case HashAlgorithm::Sha256:
      break;
  }
  return CKM_SHA256;
}

CK_RSA_PKCS_MGF_TYPE ck_mgf(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::Sha384:
      return CKG_MGF1_SHA384;
    case HashAlgorithm::Sha512:
      return CKG_MGF1_SHA512;
    case HashAlgorithm::Sha256:
      break;
  }
  return CKG_MGF1_SHA256;
}

// Issuer certificates for `cert` among `cas`, nearest first (the token's own copy of the chain).
std::vector<Bytes> build_chain(const CertificateInfo& cert, const std::vector<X509Ptr>& cas) {
  std::vector<Bytes> chain;
  X509Ptr current = x509_from_der(cert.der);
  for (int depth = 0; depth < 8; ++depth) {
    const X509* issuer = nullptr;
    for (const auto& ca : cas) {
      if (X509_check_issued(ca.get(), current.get()) == X509_V_OK) {
        issuer = ca.get();
        break;
      }
    }
    if (issuer == nullptr) break;
    chain.push_back(x509_to_der(issuer));
    if (X509_check_issued(const_cast<X509*>(issuer), const_cast<X509*>(issuer)) == X509_V_OK) {
      break;  // self-signed root reached
    }
    current.reset(X509_dup(issuer));
  }
  return chain;
}

// The mechanism and the data C_Sign signs for `digest` under `alg` (the DigestInfo for
// CKM_RSA_PKCS, the bare digest otherwise); `pss` must outlive `mech`.
std::size_t sign_input(SignAlgorithm alg, std::span<const std::uint8_t> digest, CK_MECHANISM& mech,
                       CK_RSA_PKCS_PSS_PARAMS& pss, std::span<unsigned char> input) {
  const HashAlgorithm hash = hash_of(alg);
  pss = {ck_hash(hash), ck_mgf(hash), static_cast<CK_ULONG>(digest.size())};
  mech = {CKM_RSA_PKCS, nullptr, 0};
  if (is_ecdsa(alg)) {
    mech.mechanism = CKM_ECDSA;
  } else if (is_pss(alg)) {
    mech = {CKM_RSA_PKCS_PSS, &pss, sizeof pss};
  }
  if (mech.mechanism == CKM_RSA_PKCS) {
    const auto& prefix = digest_info_prefix(hash);
    std::ranges::copy(prefix, input.begin());
    std::ranges::copy(digest, input.begin() + static_cast<std::ptrdiff_t>(prefix.size()));
    return prefix.size() + digest.size();
  }
  std::ranges::copy(digest, input.begin());
  return digest.size();
}

// The token is not there to use any more: pulled out, or its module stopped answering (and is
// quarantined: the token comes back through a fresh instance of the module).
bool gone(ErrorCode code) {
  return code == ErrorCode::TokenRemoved || code == ErrorCode::TokenUnresponsive;
}

}  // namespace

void to_json(nlohmann::json& j, const TokenInfo& t) {
  j = {
      {"module", t.module_path},
      {"slot", t.slot_id},
      {"slotDescription", t.slot_description},
      {"label", t.label},
      {"serial", t.serial},
      {"manufacturer", t.manufacturer},
      {"model", t.model},
      {"loginRequired", t.login_required},
      {"protectedAuthPath", t.protected_auth_path},
      {"userPinInitialized", t.user_pin_initialized},
      {"pinCountLow", t.pin_count_low},
      {"pinFinalTry", t.pin_final_try},
      {"pinLocked", t.pin_locked},
      {"pinToBeChanged", t.pin_to_be_changed},
      {"writeProtected", t.write_protected},
      {"minPinLength", t.min_pin},
      {"maxPinLength", t.max_pin},
      {"loggedIn", t.logged_in},
      {"firmwareVersion", t.firmware_version},
  };
}

Token::Token(std::shared_ptr<detail::Module> module, unsigned long slot, std::string identity,
             const TokenQuirks* quirks)
    : module_(std::move(module)),
      identity_(std::move(identity)),
      quirks_(quirks != nullptr ? std::optional<TokenQuirks>(*quirks) : std::nullopt),
      slot_(slot),
      sessions_(std::make_unique<detail::SessionPool>(*module_, slot)) {}

Token::~Token() {
  sessions_->clear(true);
  if (anchor_session_ != 0) {
    (void)module_->invoke<&CK_FUNCTION_LIST::C_CloseSession>(CK_SESSION_HANDLE{anchor_session_});
  }
}

const std::string& Token::module_path() const noexcept {
  return module_->path();
}

TokenInfo Token::info() {
  CK_TOKEN_INFO ti{};
  CK_SLOT_INFO si{};
  const CK_SLOT_ID slot = slot_.load();
  try {
    KYSO_CK(*module_, C_GetTokenInfo, slot, &ti);
  } catch (const Error& e) {
    if (gone(e.code())) mark_removed();
    throw;
  }
  (void)module_->invoke<&CK_FUNCTION_LIST::C_GetSlotInfo>(slot, &si);
  TokenInfo t;
  t.module_path = module_->path();
  t.slot_id = slot;
  t.slot_description = detail::fixed_string(si.slotDescription, sizeof si.slotDescription);
  t.label = detail::fixed_string(ti.label, sizeof ti.label);
  t.serial = detail::fixed_string(ti.serialNumber, sizeof ti.serialNumber);
  t.manufacturer = detail::fixed_string(ti.manufacturerID, sizeof ti.manufacturerID);
  t.model = detail::fixed_string(ti.model, sizeof ti.model);
  t.login_required = (ti.flags & CKF_LOGIN_REQUIRED) != 0;
  t.protected_auth_path = (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
  t.user_pin_initialized = (ti.flags & CKF_USER_PIN_INITIALIZED) != 0;
  t.pin_count_low = (ti.flags & CKF_USER_PIN_COUNT_LOW) != 0;
  t.pin_final_try = (ti.flags & CKF_USER_PIN_FINAL_TRY) != 0;
  t.pin_locked = (ti.flags & CKF_USER_PIN_LOCKED) != 0;
  t.pin_to_be_changed = (ti.flags & CKF_USER_PIN_TO_BE_CHANGED) != 0;
  t.write_protected = (ti.flags & CKF_WRITE_PROTECTED) != 0;
  t.min_pin = ti.ulMinPinLen;
  t.max_pin = ti.ulMaxPinLen;
  t.logged_in = logged_in_.load();
  t.firmware_version =
      std::to_string(ti.firmwareVersion.major) + "." + std::to_string(ti.firmwareVersion.minor);
  return t;
}

AuthKind Token::auth_required() {
  if (logged_in_.load()) return AuthKind::None;
  const TokenInfo t = info();
  if (!t.login_required) return AuthKind::None;
  return t.protected_auth_path ? AuthKind::ProtectedPath : AuthKind::Pin;
}

void Token::login(const Secret* pin) {
  const std::lock_guard lock(login_mutex_);
  if (logged_in_.load()) return;
  if (removed_.load()) throw Error(ErrorCode::TokenRemoved, "token was removed");

  // Read the PIN state first: a locked, last-try or must-change PIN is never sent.
  const TokenInfo t = info();
  if (!t.login_required) {
    logged_in_ = true;
    return;
  }
  if (t.pin_locked)
    throw Error(ErrorCode::PinLocked, "token '" + t.label + "' reports its PIN locked");
  if (t.pin_final_try) {
    throw Error(ErrorCode::PinFinalTry, "token '" + t.label + "' reports one PIN try left");
  }
  if (t.pin_to_be_changed) {
    throw Error(ErrorCode::PinMustChange, "token '" + t.label + "' requires a PIN change");
  }

  PinTagger::Tag tag{};
  if (pin == nullptr) {
    if (!t.protected_auth_path) {
      throw Error(ErrorCode::LoginRequired,
                  "token '" + t.label + "' has no PIN pad; a PIN is needed");
    }
  } else {
    tag = tag_unless_rejected(*pin);
    // A PIN the token cannot accept would only burn a try.
    const bool sane = t.max_pin > 0 && t.max_pin < 1024 && t.min_pin <= t.max_pin;
    if (sane && (pin->size() < t.min_pin || pin->size() > t.max_pin)) {
      throw Error(ErrorCode::PinInvalid, "PIN length outside " + std::to_string(t.min_pin) + ".." +
                                             std::to_string(t.max_pin));
    }
  }

  if (anchor_session_ == 0) {
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    KYSO_CK(*module_, C_OpenSession, slot_.load(), CKF_SERIAL_SESSION, nullptr, nullptr, &h);
    anchor_session_ = h;
  }
  const CK_RV rv = send_login(anchor_session_, CKU_USER, pin);
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
    pin_pad_ = t.protected_auth_path;
    logged_in_ = true;
    failed_pin_tag_.reset();
    return;
  }
  if (rv == CKR_PIN_INCORRECT && pin != nullptr) failed_pin_tag_ = tag;
  if (rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == detail::kRvUnresponsive) {
    mark_removed();
  }
  detail::throw_rv(rv, "C_Login", "Token::login");
}

PinTagger::Tag Token::tag_unless_rejected(const Secret& pin) {
  const PinTagger::Tag tag = pin_tags_.tag(pin);
  if (failed_pin_tag_ && PinTagger::same(tag, *failed_pin_tag_)) {
    throw Error(ErrorCode::PinRepeated, "this PIN was rejected by the token before; not sent");
  }
  return tag;
}

unsigned long Token::send_login(unsigned long session, unsigned long user_type, const Secret* pin) {
  // On a PIN pad the call lasts as long as the person takes to type.
  const auto kind = pin == nullptr ? detail::CallKind::Human : detail::CallKind::Quick;
  return module_->invoke_as<&CK_FUNCTION_LIST::C_Login>(
      kind, nullptr, CK_SESSION_HANDLE{session}, CK_USER_TYPE{user_type},
      pin == nullptr ? nullptr : const_cast<unsigned char*>(pin->data()),
      pin == nullptr ? 0UL : static_cast<CK_ULONG>(pin->size()));
}

void Token::context_login(unsigned long session, const Secret* pin) {
  // The same guard as login(): a PIN the token rejected is never sent again.
  PinTagger::Tag tag{};
  if (pin != nullptr) {
    const std::lock_guard lock(login_mutex_);
    tag = tag_unless_rejected(*pin);
  }
  const CK_RV rv = send_login(session, CKU_CONTEXT_SPECIFIC, pin);
  if (rv == CKR_OK) return;
  if (rv == CKR_PIN_INCORRECT && pin != nullptr) {
    const std::lock_guard lock(login_mutex_);
    failed_pin_tag_ = tag;
  }
  detail::throw_rv(rv, "C_Login(CKU_CONTEXT_SPECIFIC)", "Token::sign");
}

void Token::logout() noexcept {
  const std::lock_guard lock(login_mutex_);
  if (anchor_session_ != 0) {
    (void)module_->invoke<&CK_FUNCTION_LIST::C_Logout>(CK_SESSION_HANDLE{anchor_session_});
    (void)module_->invoke<&CK_FUNCTION_LIST::C_CloseSession>(CK_SESSION_HANDLE{anchor_session_});
    anchor_session_ = 0;
  }
  logged_in_ = false;
  const std::lock_guard keys(keys_mutex_);
  key_handles_.clear();
}

void Token::mark_removed() noexcept {
  removed_ = true;
  logged_in_ = false;
  sessions_->clear(false);
  {
    const std::lock_guard keys(keys_mutex_);
    key_handles_.clear();
    credentials_.reset();  // whatever comes back may have been provisioned elsewhere
  }
  anchor_session_ = 0;  // invalid with the token gone; the module forgets it by itself
}

void Token::reattach(unsigned long slot) noexcept {
  if (slot_.load() != slot) {
    slot_ = slot;
    sessions_->set_slot(slot);
    sessions_->clear(true);
  }
  removed_ = false;
}

std::vector<unsigned long> Token::mechanisms() {
  const std::lock_guard lock(keys_mutex_);
  if (mechanisms_) return *mechanisms_;
  CK_ULONG n = 0;
  const CK_SLOT_ID slot = slot_.load();
  KYSO_CK(*module_, C_GetMechanismList, slot, nullptr, &n);
  std::vector<CK_MECHANISM_TYPE> list(n);
  KYSO_CK(*module_, C_GetMechanismList, slot, list.data(), &n);
  list.resize(n);
  mechanisms_ = std::vector<unsigned long>(list.begin(), list.end());
  return *mechanisms_;
}

std::vector<Credential> Token::credentials() {
  const TokenInfo t = info();
  auto lease = sessions_->acquire();
  try {
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ctype = CKC_X_509;
    std::array<CK_ATTRIBUTE, 2> tmpl{
        {{CKA_CLASS, &cls, sizeof cls}, {CKA_CERTIFICATE_TYPE, &ctype, sizeof ctype}}};
    struct Found {
      CertificateInfo cert;
      Bytes key_id;
    };
    std::vector<Found> end_entities;
    std::vector<X509Ptr> cas;
    const auto handles = find_objects(*module_, lease.handle(), tmpl);
    {
      // The same certificate objects as last time: their contents did not change (a token's
      // certificates are replaced by deleting and creating objects). Reading and parsing
      // every certificate costs a USB token tens of milliseconds per request.
      const std::lock_guard lock(keys_mutex_);
      if (credentials_ && credentials_->handles == handles && credentials_->label == t.label) {
        return credentials_->list;
      }
    }
    for (CK_OBJECT_HANDLE o : handles) {
      const Bytes der = read_attribute(*module_, lease.handle(), o, CKA_VALUE);
      if (der.empty()) continue;
      CertificateInfo info;
      try {
        info = parse_certificate(der);
      } catch (const Error&) {
        continue;  // an unreadable certificate object is not a credential
      }
      if (info.is_ca) {
        cas.push_back(x509_from_der(der));
        continue;
      }
      Bytes id = read_attribute(*module_, lease.handle(), o, CKA_ID);
      if (id.empty()) continue;  // no CKA_ID: no way to find its private key
      end_entities.push_back({std::move(info), std::move(id)});
    }

    const auto mechs = mechanisms();
    auto has = [&](CK_MECHANISM_TYPE m) { return std::ranges::find(mechs, m) != mechs.end(); };
    std::vector<Credential> out;
    for (auto& f : end_entities) {
      Credential c;
      c.chain = build_chain(f.cert, cas);
      c.source = {.kind = "token", .name = t.label, .serial = t.serial, .module = t.module_path};
      for (auto alg : algorithms_for_key(f.cert)) {
        const bool ok = is_ecdsa(alg) ? has(CKM_ECDSA)
                        : is_pss(alg) ? has(CKM_RSA_PKCS_PSS)
                                      : has(CKM_RSA_PKCS);
        // A family this model's firmware fails with is not offered (token profile quirk).
        const bool avoided =
            quirks_ && std::ranges::find(quirks_->avoid, family_of(alg)) != quirks_->avoid.end();
        if (ok && !avoided) c.algorithms.push_back(alg);
      }
      c.cert = std::move(f.cert);
      {
        const std::lock_guard lock(keys_mutex_);
        credential_key_ids_[c.id()] = f.key_id;
      }
      out.push_back(std::move(c));
    }
    if (quirks_ && !quirks_->prefer.empty()) {
      // Credentials whose key fits an earlier preferred family come first.
      const auto rank = [&](const Credential& c) {
        for (std::size_t i = 0; i < quirks_->prefer.size(); ++i) {
          if (std::ranges::any_of(c.algorithms, [&](SignAlgorithm a) {
                return family_of(a) == quirks_->prefer[i];
              })) {
            return i;
          }
        }
        return quirks_->prefer.size();
      };
      std::ranges::stable_sort(out, {}, rank);
    }
    {
      const std::lock_guard lock(keys_mutex_);
      credentials_ = CachedCredentials{.handles = handles, .label = t.label, .list = out};
    }
    return out;
  } catch (const Error& e) {
    lease.poison();
    if (gone(e.code())) mark_removed();
    throw;
  }
}

std::shared_ptr<Signer> Token::signer(const Credential& credential) {
  Bytes key_id;
  {
    const std::lock_guard lock(keys_mutex_);
    if (auto it = credential_key_ids_.find(credential.id()); it != credential_key_ids_.end()) {
      key_id = it->second;
    }
  }
  if (key_id.empty()) {
    (void)credentials();  // learns the CKA_IDs
    const std::lock_guard lock(keys_mutex_);
    auto it = credential_key_ids_.find(credential.id());
    if (it == credential_key_ids_.end()) {
      throw Error(ErrorCode::CredentialNotFound, "credential " + credential.id() + " not on token");
    }
    key_id = it->second;
  }
  return std::make_shared<detail::TokenSigner>(shared_from_this(), credential, std::move(key_id));
}

void Token::forget_key(std::span<const std::uint8_t> key_id) {
  const std::lock_guard lock(keys_mutex_);
  if (auto it = key_handles_.find(key_id); it != key_handles_.end()) key_handles_.erase(it);
}

bool Token::session_logged_in() {
  auto lease = sessions_->acquire();
  CK_SESSION_INFO si{};
  if (module_->invoke<&CK_FUNCTION_LIST::C_GetSessionInfo>(lease.handle(), &si) != CKR_OK) {
    lease.poison();
    return false;
  }
  return si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
}

Token::KeyInfo Token::find_private_key(std::span<const std::uint8_t> key_id) {
  {
    const std::lock_guard lock(keys_mutex_);
    if (auto it = key_handles_.find(key_id); it != key_handles_.end()) return it->second;
  }
  const Bytes id(key_id.begin(), key_id.end());
  auto lease = sessions_->acquire();
  KeyInfo key;
  try {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    std::array<CK_ATTRIBUTE, 2> tmpl{
        {{CKA_CLASS, &cls, sizeof cls},
         {CKA_ID, const_cast<std::uint8_t*>(id.data()), static_cast<CK_ULONG>(id.size())}}};
    const auto found = find_objects(*module_, lease.handle(), tmpl);
    if (found.empty()) {
      if (!logged_in_.load()) throw Error(ErrorCode::LoginRequired, "private key needs a login");
      throw Error(ErrorCode::KeyNotFound, "no private key with CKA_ID " + to_hex(id));
    }
    key.handle = found.front();
    const Bytes always =
        read_attribute(*module_, lease.handle(), key.handle, CKA_ALWAYS_AUTHENTICATE);
    key.always_authenticate = always.size() == 1 && always[0] == CK_TRUE;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::LoginRequired && e.code() != ErrorCode::KeyNotFound) lease.poison();
    throw;
  }
  const std::lock_guard lock(keys_mutex_);
  key_handles_[id] = key;
  return key;
}

bool Token::always_authenticate(std::span<const std::uint8_t> key_id) {
  return find_private_key(key_id).always_authenticate;
}

Bytes Token::sign(std::span<const std::uint8_t> key_id, const CertificateInfo& cert,
                  SignAlgorithm alg, std::span<const std::uint8_t> digest, SignatureEncoding enc,
                  const Secret* context_pin) {
  check_digest(alg, digest);
  if ((cert.key_type == "EC") != is_ecdsa(alg)) {
    throw Error(ErrorCode::AlgorithmUnsupported,
                std::string(to_string(alg)) + " does not fit a " + cert.key_type + " key");
  }
  if (removed_.load()) throw Error(ErrorCode::TokenRemoved, "token was removed");
  if (!find_private_key(key_id).always_authenticate) {
    // A run of one: C_SignInit and C_Sign in one hand-off to the module's call pool.
    const std::array<Bytes, 1> one{Bytes(digest.begin(), digest.end())};
    Run run = sign_run(key_id, cert, alg, one, enc);
    if (run.error) throw *run.error;
    return std::move(run.signatures.front());
  }

  // What C_SignInit and C_Sign read and write lives on the heap, held by the calls: a call the
  // watchdog gave up on may still come back and write its signature after we returned.
  struct Frame {
    CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
    CK_RSA_PKCS_PSS_PARAMS pss{};
    std::array<unsigned char, 19 + 64> input{};
    std::array<unsigned char, 1024> sig{};  // RSA-8192 at most
    CK_ULONG sig_len = 0;
  };
  auto f = std::make_shared<Frame>();
  const std::size_t input_len = sign_input(alg, digest, f->mech, f->pss, f->input);

  // A key that wants the PIN right before each signature (CKA_ALWAYS_AUTHENTICATE): C_SignInit,
  // the context-specific login, C_Sign, one signature at a time.
  for (int attempt = 0;; ++attempt) {
    const KeyInfo key = find_private_key(key_id);
    auto lease = sessions_->acquire();
    f->sig_len = static_cast<CK_ULONG>(f->sig.size());
    try {
      const std::unique_lock context_lock(context_sign_mutex_);
      CK_RV rv = module_->invoke_as<&CK_FUNCTION_LIST::C_SignInit>(
          detail::CallKind::Sign, f, lease.handle(), &f->mech, CK_OBJECT_HANDLE{key.handle});
      if (rv != CKR_OK) detail::throw_rv(rv, "C_SignInit", __func__);
      // Without a PIN only a PIN pad can answer; anything else would spend a try.
      if (context_pin == nullptr && !pin_pad_.load()) {
        throw Error(ErrorCode::LoginRequired,
                    "this key needs the PIN before each signature and none was given");
      }
      context_login(lease.handle(), context_pin);
      rv = module_->invoke_as<&CK_FUNCTION_LIST::C_Sign>(
          detail::CallKind::Sign, f, lease.handle(), f->input.data(),
          static_cast<CK_ULONG>(input_len), f->sig.data(), &f->sig_len);
      if (rv != CKR_OK) detail::throw_rv(rv, "C_Sign", __func__);
      break;
    } catch (const Error& e) {
      lease.poison();
      sign_failed(e, key_id, attempt);
    }
  }
  std::span<const std::uint8_t> out(f->sig.data(), f->sig_len);
  if (is_ecdsa(alg) && enc == SignatureEncoding::Der) return ecdsa_raw_to_der(out);
  return {out.begin(), out.end()};
}

void Token::sign_failed(const Error& e, std::span<const std::uint8_t> key_id, int attempt) {
  if (gone(e.code())) mark_removed();
  if (e.code() == ErrorCode::LoginRequired) logged_in_ = false;
  if (e.code() != ErrorCode::KeyNotFound || attempt > 0) throw e;
  // The cached key handle went stale: the token logged out behind our back (another
  // program's C_Logout, a reader reset). Look the key up again once; if the login is
  // gone, say so instead of signing.
  forget_key(key_id);
  if (!session_logged_in()) {
    logged_in_ = false;
    throw Error(ErrorCode::LoginRequired, "the token logged out: " + e.detail());
  }
}

Token::Run Token::sign_run(std::span<const std::uint8_t> key_id, const CertificateInfo& cert,
                           SignAlgorithm alg, std::span<const Bytes> digests,
                           SignatureEncoding enc) {
  Run out;
  // What the calls read and write, owned by the run (see sign()).
  struct Frame {
    CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
    CK_RSA_PKCS_PSS_PARAMS pss{};
    std::vector<std::array<unsigned char, 19 + 64>> inputs;
    std::vector<CK_ULONG> input_lens;
    std::vector<std::array<unsigned char, 1024>> sigs;  // RSA-8192 at most
    std::vector<CK_ULONG> sig_lens;
    std::atomic<std::size_t> done{0};  // signatures made: sigs[0, done) are final
    bool init_failed = false;          // which call of the failed signature returned the error
  };
  auto f = std::make_shared<Frame>();
  std::optional<Error> malformed;  // the first digest sign() would refuse: the run stops there
  if ((cert.key_type == "EC") != is_ecdsa(alg)) {
    malformed = Error(ErrorCode::AlgorithmUnsupported,
                      std::string(to_string(alg)) + " does not fit a " + cert.key_type + " key");
  }
  f->inputs.reserve(digests.size());
  for (std::size_t i = 0; i < digests.size() && !malformed; ++i) {
    try {
      check_digest(alg, digests[i]);
    } catch (const Error& e) {
      malformed = e;
      break;
    }
    f->inputs.emplace_back();
    f->input_lens.push_back(
        static_cast<CK_ULONG>(sign_input(alg, digests[i], f->mech, f->pss, f->inputs.back())));
  }
  const std::size_t n = f->inputs.size();
  f->sigs.resize(n);
  f->sig_lens.resize(n);
  try {
    if (n > 0 && removed_.load()) throw Error(ErrorCode::TokenRemoved, "token was removed");
    for (int attempt = 0; n > 0; ++attempt) {
      const KeyInfo key = find_private_key(key_id);
      if (key.always_authenticate) {
        // A context-specific login before each signature, one at a time: sign() does that.
        out.signatures.push_back(sign(key_id, cert, alg, digests[out.signatures.size()], enc));
        return out;
      }
      auto lease = sessions_->acquire();
      const CK_SESSION_HANDLE session = lease.handle();
      const CK_OBJECT_HANDLE handle{key.handle};
      // Every C_SignInit + C_Sign of the run in one hand-off to the module's call pool, each
      // call under the signing deadline; the run stops at the first error.
      const CK_RV rv = module_->invoke_run(
          detail::CallKind::Sign,
          [f, session, handle, n](const CK_FUNCTION_LIST& fl, detail::StepClock& steps) {
            if (fl.C_SignInit == nullptr || fl.C_Sign == nullptr) {
              return CK_RV{CKR_FUNCTION_NOT_SUPPORTED};
            }
            for (std::size_t i = f->done.load(); i < n; i = ++f->done) {
              if (!steps.begin()) return detail::kRvUnresponsive;
              const CK_RV init = fl.C_SignInit(session, &f->mech, handle);
              f->init_failed = init != CKR_OK;
              if (init != CKR_OK) return init;
              f->sig_lens[i] = static_cast<CK_ULONG>(f->sigs[i].size());
              if (!steps.begin()) return detail::kRvUnresponsive;
              const CK_RV signed_rv = fl.C_Sign(session, f->inputs[i].data(), f->input_lens[i],
                                                f->sigs[i].data(), &f->sig_lens[i]);
              if (signed_rv != CKR_OK) return signed_rv;
            }
            return CK_RV{CKR_OK};
          });
      // The signatures made so far are final, even from a run the watchdog gave up on.
      const std::size_t done = f->done.load();
      for (std::size_t i = out.signatures.size(); i < done; ++i) {
        const std::span<const std::uint8_t> sig(f->sigs[i].data(), f->sig_lens[i]);
        out.signatures.push_back(is_ecdsa(alg) && enc == SignatureEncoding::Der
                                     ? ecdsa_raw_to_der(sig)
                                     : Bytes(sig.begin(), sig.end()));
      }
      if (rv == CKR_OK) break;
      try {
        detail::throw_rv(
            rv, rv != detail::kRvUnresponsive && f->init_failed ? "C_SignInit" : "C_Sign", "sign");
      } catch (const Error& e) {
        lease.poison();
        sign_failed(e, key_id, attempt);  // returns only for a retry with a fresh key handle
      }
    }
  } catch (const Error& e) {
    out.error = e;
    return out;
  }
  out.error = malformed;
  return out;
}

}  // namespace kyso::pkcs11
