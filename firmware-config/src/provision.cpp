#include "kyso/firmware_config/provision.hpp"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

#include "kyso/core/random.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/core/text.hpp"
#include "kyso/pkcs11/library.hpp"

namespace kyso::firmware_config {
namespace {

using ReqPtr = std::unique_ptr<X509_REQ, FnDeleter<X509_REQ_free>>;
using ExtStackPtr =
    std::unique_ptr<STACK_OF(X509_EXTENSION), decltype([](STACK_OF(X509_EXTENSION) * s) {
                      sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
                    })>;

// Attribute names accepted in a subject, with OpenSSL's short name for each.
struct AttrName {
  std::string_view name;
  const char* openssl;
};
constexpr std::array<AttrName, 14> kAttrs{{
    {"C", "C"},
    {"ST", "ST"},
    {"L", "L"},
    {"O", "O"},
    {"OU", "OU"},
    {"CN", "CN"},
    {"UID", "UID"},
    {"title", "title"},
    {"T", "title"},
    {"E", "emailAddress"},
    {"emailAddress", "emailAddress"},
    {"serialNumber", "serialNumber"},
    {"street", "street"},
    {"DC", "DC"},
}};

const AttrName* find_attr(std::string_view name) {
  for (const auto& a : kAttrs) {
    if (ascii_iequals(a.name, name)) {
      return &a;
    }
  }
  return nullptr;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
}

// The identity prefixes Vietnamese CAs put in a subject's UID (CCCD, CMND, HC for a person; MST,
// MNS for an organization): reject typos before a CA sees them.
void check_uid(const std::string& v) {
  const auto colon = v.find(':');
  if (colon == std::string::npos) {
    throw Error(ErrorCode::BadRequest,
                "UID '" + v + "' needs a prefix: CCCD:, CMND:, HC:, MST: or MNS:");
  }
  std::string prefix = v.substr(0, colon);
  std::ranges::transform(prefix, prefix.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  const std::string value = v.substr(colon + 1);
  bool ok = false;
  if (prefix == "CCCD")
    ok = value.size() == 12 && all_digits(value);
  else if (prefix == "CMND")
    ok = (value.size() == 9 || value.size() == 12) && all_digits(value);
  else if (prefix == "HC")
    ok = value.size() >= 6 && value.size() <= 12 && std::ranges::all_of(value, [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) != 0;
         });
  else if (prefix == "MST") {
    const auto dash = value.find('-');
    ok = dash == std::string::npos ? (value.size() == 10 || value.size() == 13) && all_digits(value)
                                   : dash == 10 && all_digits(value.substr(0, 10)) &&
                                         value.size() == 14 && all_digits(value.substr(11));
  } else if (prefix == "MNS") {
    ok = value.size() >= 5 && value.size() <= 10 && all_digits(value);
  } else {
    throw Error(ErrorCode::BadRequest,
                "UID prefix '" + prefix + "' is not CCCD, CMND, HC, MST or MNS");
  }
  if (!ok)
    throw Error(ErrorCode::BadRequest, "UID '" + v + "' is not a valid " + prefix + " number");
}

bool key_matches(const pkcs11::KeyPairInfo& k, std::string_view key) {
  return k.label == key || to_hex(k.id) == key;
}

Bytes spki_of(const X509* cert) {
  const int len = i2d_PUBKEY(X509_get0_pubkey(cert), nullptr);
  if (len <= 0) throw Error(ErrorCode::CertInvalid, "certificate public key unreadable");
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  (void)i2d_PUBKEY(X509_get0_pubkey(cert), &p);
  return out;
}

std::string common_name(const X509* cert) {
  std::array<char, 256> buf{};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf.data(),
                                static_cast<int>(buf.size())) > 0) {
    return buf.data();
  }
  return "CA";
}

}  // namespace

Subject parse_subject(std::string_view dn) {
  Subject out;
  std::string cur;
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == '\\' && i + 1 < dn.size()) {
      cur += dn[++i];
    } else if (dn[i] == ',') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += dn[i];
    }
  }
  parts.push_back(cur);
  for (const auto& part : parts) {
    const auto eq = part.find('=');
    const std::string name = trim(part.substr(0, eq == std::string::npos ? 0 : eq));
    if (eq == std::string::npos || name.empty()) {
      throw Error(ErrorCode::BadRequest, "subject part '" + trim(part) + "' is not NAME=value");
    }
    const AttrName* attr = find_attr(name);
    if (attr == nullptr)
      throw Error(ErrorCode::BadRequest, "unknown subject attribute '" + name + "'");
    std::string value = trim(part.substr(eq + 1));
    if (value.empty())
      throw Error(ErrorCode::BadRequest, "subject attribute " + name + " is empty");
    const std::string canonical(attr->name == "T"   ? "title"
                                : attr->name == "E" ? "emailAddress"
                                                    : attr->name);
    if (canonical == "C" && (value.size() != 2 || !std::ranges::all_of(value, [](char c) {
                               return std::isupper(static_cast<unsigned char>(c)) != 0;
                             }))) {
      throw Error(ErrorCode::BadRequest, "C must be a two-letter country code such as VN");
    }
    if (canonical == "UID") check_uid(value);
    out.emplace_back(canonical, std::move(value));
  }
  if (std::ranges::none_of(out, [](const auto& a) { return a.first == "CN"; })) {
    throw Error(ErrorCode::BadRequest, "the subject needs a CN (the person's or school's name)");
  }
  return out;
}

std::string format_subject(const Subject& subject) {
  std::string s;
  for (const auto& [k, v] : subject) {
    if (!s.empty()) s += ", ";
    s += k + "=";
    for (char c : v) {
      if (c == ',') s += '\\';
      s += c;
    }
  }
  return s;
}

Provisioner::Provisioner(std::string module_path)
    : module_(std::move(module_path)), admin_(module_) {}

void Provisioner::check_new_pin(const Secret& pin) const {
  if (profile_) profile_->pin.check(pin);
}

void Provisioner::check_new_so_pin(const Secret& pin) const {
  if (!profile_) return;
  // The SO PIN follows the token's length limits but not the user PIN's charset rule.
  PinPolicy so_policy = profile_->pin;
  so_policy.charset = PinCharset::Any;
  so_policy.check(pin);
}

pkcs11::SlotState Provisioner::find_token(std::string_view token) {
  for (auto& s : admin_.slots()) {
    if (s.initialized && (s.label == token || s.serial == token)) return s;
  }
  throw Error(ErrorCode::TokenNotFound,
              "no initialized token '" + std::string(token) + "' in " + module_);
}

InitResult Provisioner::init_token(std::string_view label, const Secret& so_pin,
                                   const Secret& user_pin, const std::optional<std::string>& target,
                                   bool allow_reinit) {
  if (label.empty() || label.size() > 32) {
    throw Error(ErrorCode::BadRequest, "token label must be 1..32 bytes of UTF-8");
  }
  check_new_pin(user_pin);
  check_new_so_pin(so_pin);
  const auto before = admin_.slots();
  const pkcs11::SlotState* slot = nullptr;
  for (const auto& s : before) {
    if (target ? (s.label == *target || s.serial == *target || std::to_string(s.slot_id) == *target)
               : !s.initialized) {
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) {
    throw Error(ErrorCode::TokenNotFound,
                target ? "no token '" + *target + "'" : "no blank token: insert one");
  }
  if (slot->initialized && !allow_reinit) {
    throw Error(
        ErrorCode::BadRequest,
        "token '" + slot->label + "' is already initialized; re-initializing erases it (--force)");
  }
  for (const Secret* pin : {&so_pin, &user_pin}) {
    const bool sane = slot->max_pin > 0 && slot->max_pin < 1024;
    if (sane && (pin->size() < slot->min_pin || pin->size() > slot->max_pin)) {
      throw Error(ErrorCode::PinInvalid, "PIN length must be " + std::to_string(slot->min_pin) +
                                             ".." + std::to_string(slot->max_pin));
    }
  }
  for (const auto& s : before) {
    if (s.initialized && s.label == label && s.slot_id != slot->slot_id) {
      throw Error(ErrorCode::BadRequest,
                  "another token is already labelled '" + std::string(label) + "'");
    }
  }
  admin_.init_token(slot->slot_id, so_pin, label);

  // The token may come back in another slot (SoftHSM re-numbers it): find it by label among
  // the slots that did not hold this initialized token before.
  std::optional<pkcs11::SlotState> now;
  for (auto& s : admin_.slots()) {
    if (s.initialized && s.label == label) now = s;
  }
  if (!now) throw Error(ErrorCode::TokenError, "token not found after C_InitToken");
  {
    auto session = admin_.open(now->slot_id);
    session.login_so(so_pin);
    session.init_user_pin(user_pin);
  }
  return {now->slot_id, now->serial, now->label};
}

void Provisioner::change_pin(std::string_view token, const Secret& old_pin, const Secret& new_pin) {
  check_new_pin(new_pin);
  auto session = admin_.open(find_token(token).slot_id);
  session.login_user(old_pin);
  session.set_pin(old_pin, new_pin);
}

void Provisioner::change_so_pin(std::string_view token, const Secret& old_so_pin,
                                const Secret& new_so_pin) {
  check_new_so_pin(new_so_pin);
  auto session = admin_.open(find_token(token).slot_id);
  session.login_so(old_so_pin);
  session.set_pin(old_so_pin, new_so_pin);
}

void Provisioner::unblock_pin(std::string_view token, const Secret& so_pin, const Secret& new_pin) {
  check_new_pin(new_pin);
  auto session = admin_.open(find_token(token).slot_id);
  session.login_so(so_pin);
  session.init_user_pin(new_pin);
}

std::vector<pkcs11::KeyPairInfo> Provisioner::key_pairs(std::string_view token, const Secret& pin) {
  auto session = admin_.open(find_token(token).slot_id);
  session.login_user(pin);
  return session.key_pairs();
}

pkcs11::KeyPairInfo Provisioner::keygen(std::string_view token, const Secret& pin,
                                        pkcs11::KeyAlgorithm alg, std::string_view label,
                                        Bytes id) {
  if (label.empty()) throw Error(ErrorCode::BadRequest, "a key pair needs a label");
  if (profile_ && std::ranges::find(profile_->algorithms, alg) == profile_->algorithms.end()) {
    throw Error(ErrorCode::AlgorithmUnsupported, std::string(pkcs11::to_string(alg)) +
                                                     " is not among the " + profile_->token.model +
                                                     "'s key algorithms");
  }
  auto session = admin_.open(find_token(token).slot_id);
  session.login_user(pin);
  if (id.empty()) id = random_bytes(16);
  for (const auto& k : session.key_pairs()) {
    if (k.label == label || k.id == id) {
      throw Error(ErrorCode::BadRequest, "token already holds a key pair with label '" + k.label +
                                             "' / id " + to_hex(k.id));
    }
  }
  return session.generate_key_pair(alg, id, label);
}

CsrResult Provisioner::make_csr(std::string_view token, const Secret& pin, std::string_view key,
                                const Subject& subject) {
  const pkcs11::SlotState slot = find_token(token);
  std::optional<pkcs11::KeyPairInfo> found;
  {
    auto session = admin_.open(slot.slot_id);
    session.login_user(pin);
    for (auto& k : session.key_pairs()) {
      if (key_matches(k, key)) {
        if (found)
          throw Error(ErrorCode::BadRequest, "several key pairs match '" + std::string(key) + "'");
        found = std::move(k);
      }
    }
  }  // logs the admin session out before the token layer logs in for signing
  if (!found)
    throw Error(ErrorCode::KeyNotFound, "no key pair '" + std::string(key) + "' on the token");
  if (found->spki.empty())
    throw Error(ErrorCode::TokenError, "the token does not reveal the public key");

  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1)
    throw Error(ErrorCode::Internal, openssl_error());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  for (const auto& [attr, value] : subject) {
    const AttrName* a = find_attr(attr);
    // MBSTRING_UTF8 with OpenSSL's default utf8only mask: names stay UTF8String (C stays
    // PrintableString as X.520 requires).
    if (a == nullptr ||
        X509_NAME_add_entry_by_txt(name, a->openssl, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      throw Error(ErrorCode::BadRequest,
                  "cannot encode subject attribute " + attr + ": " + openssl_error());
    }
  }
  const unsigned char* p = found->spki.data();
  EvpPkeyPtr pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(found->spki.size())));
  if (!pub || X509_REQ_set_pubkey(req.get(), pub.get()) != 1) {
    throw Error(ErrorCode::TokenError, "public key from the token unusable: " + openssl_error());
  }
  ExtStackPtr exts(sk_X509_EXTENSION_new_null());
  X509_EXTENSION* ku = X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage,
                                           "critical,digitalSignature,nonRepudiation");
  if (!exts || ku == nullptr || sk_X509_EXTENSION_push(exts.get(), ku) == 0 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1) {
    if (ku != nullptr && !exts) X509_EXTENSION_free(ku);
    throw Error(ErrorCode::Internal, "keyUsage request: " + openssl_error());
  }

  // The signed part (CertificationRequestInfo), hashed here and signed on the token.
  const int tbs_len = i2d_re_X509_REQ_tbs(req.get(), nullptr);
  if (tbs_len <= 0) throw Error(ErrorCode::Internal, "i2d_re_X509_REQ_tbs: " + openssl_error());
  Bytes tbs(static_cast<std::size_t>(tbs_len));
  unsigned char* tp = tbs.data();
  (void)i2d_re_X509_REQ_tbs(req.get(), &tp);
  const Bytes digest = sha256(tbs);

  const bool ec = found->key_type == "EC";
  const SignAlgorithm alg = ec ? SignAlgorithm::EcdsaSha256 : SignAlgorithm::RsaPkcs1Sha256;
  Bytes signature;
  {
    pkcs11::Library lib(
        pkcs11::ModuleConfig{.paths = {module_}, .use_p11kit = false, .use_known = false});
    auto t = lib.token(slot.serial.empty() ? slot.label : slot.serial);
    t->login(&pin);
    CertificateInfo key_only;  // no certificate yet: the token layer needs only the key type
    key_only.key_type = found->key_type;
    signature = t->sign(found->id, key_only, alg, digest, SignatureEncoding::Der);
    t->logout();
  }

  std::unique_ptr<X509_ALGOR, FnDeleter<X509_ALGOR_free>> algor(X509_ALGOR_new());
  if (!algor ||
      X509_ALGOR_set0(algor.get(),
                      OBJ_nid2obj(ec ? NID_ecdsa_with_SHA256 : NID_sha256WithRSAEncryption),
                      ec ? V_ASN1_UNDEF : V_ASN1_NULL, nullptr) != 1 ||
      X509_REQ_set1_signature_algo(req.get(), algor.get()) != 1) {
    throw Error(ErrorCode::Internal, "signature algorithm: " + openssl_error());
  }
  ASN1_BIT_STRING* bits = ASN1_BIT_STRING_new();
  if (bits == nullptr ||
      ASN1_BIT_STRING_set(bits, signature.data(), static_cast<int>(signature.size())) != 1) {
    ASN1_BIT_STRING_free(bits);
    throw Error(ErrorCode::Internal, "signature bits: " + openssl_error());
  }
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07L);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;  // a whole number of bytes, no unused bits
  X509_REQ_set0_signature(req.get(), bits);

  // Check our own work before anyone sends it to a CA.
  if (X509_REQ_verify(req.get(), pub.get()) != 1) {
    throw Error(ErrorCode::TokenError, "the token's signature on the request does not verify");
  }
  CsrResult out;
  const int der_len = i2d_X509_REQ(req.get(), nullptr);
  out.der.resize(static_cast<std::size_t>(der_len));
  unsigned char* dp = out.der.data();
  (void)i2d_X509_REQ(req.get(), &dp);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1)
    throw Error(ErrorCode::Internal, openssl_error());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  out.pem.assign(data, static_cast<std::size_t>(n));
  out.key = std::move(*found);
  return out;
}

ImportResult Provisioner::import_certificate(std::string_view token, const Secret& pin,
                                             std::span<const Bytes> certificates) {
  if (certificates.empty()) throw Error(ErrorCode::BadRequest, "no certificate to import");
  auto session = admin_.open(find_token(token).slot_id);
  session.login_user(pin);
  const auto keys = session.key_pairs();
  const auto existing = session.certificates();
  auto present = [&](const Bytes& der) {
    return std::ranges::any_of(existing, [&](const pkcs11::CertObject& c) { return c.der == der; });
  };

  // The end-entity certificate is the one whose key is on the token; the others are its chain.
  std::optional<std::size_t> ee;
  ImportResult result;
  for (std::size_t i = 0; i < certificates.size() && !ee; ++i) {
    X509Ptr cert = x509_from_der(certificates[i]);
    const Bytes spki = spki_of(cert.get());
    for (const auto& k : keys) {
      if (!k.spki.empty() && k.spki == spki) {
        ee = i;
        result.key = k;
      }
    }
  }
  if (!ee) {
    const CertificateInfo info = parse_certificate(certificates.front());
    throw Error(ErrorCode::KeyNotFound, "certificate '" + info.subject +
                                            "' matches no key pair on token " + std::string(token) +
                                            ": refusing to import it");
  }
  const CertificateInfo info = parse_certificate(certificates[*ee]);
  if (info.is_ca)
    throw Error(ErrorCode::CertInvalid, "the certificate for the token's key is a CA certificate");
  if (!present(certificates[*ee])) {
    session.import_certificate(certificates[*ee], result.key.id, result.key.label, false);
    result.certificate_added = true;
  }
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    if (i == *ee || present(certificates[i])) continue;
    X509Ptr ca = x509_from_der(certificates[i]);
    const Bytes id = sha256(spki_of(ca.get()));
    session.import_certificate(certificates[i], std::span(id).first(20), common_name(ca.get()),
                               true);
    ++result.chain_added;
  }
  return result;
}

}  // namespace kyso::firmware_config
