#include "kyso/pkcs11/admin.hpp"

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <array>
#include <utility>

#include "module.hpp"
#include "objects.hpp"

namespace kyso::pkcs11 {
namespace {

using detail::find_objects;
using detail::Module;
using detail::read_attribute;

using BnPtr = std::unique_ptr<BIGNUM, FnDeleter<BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, FnDeleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, FnDeleter<OSSL_PARAM_free>>;

// DER of the OID prime256v1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS for P-256.
constexpr std::array<unsigned char, 10> kP256Params{0x06, 0x08, 0x2a, 0x86, 0x48,
                                                    0xce, 0x3d, 0x03, 0x01, 0x07};

CK_ULONG read_ulong(const Module& m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                    CK_ATTRIBUTE_TYPE type) {
  CK_ULONG v = 0;
  CK_ATTRIBUTE attr{type, &v, sizeof v};
  KYSO_CK(m, C_GetAttributeValue, s, o, &attr, 1UL);
  return v;
}

Bytes pkey_to_spki(EVP_PKEY* pkey) {
  const int len = i2d_PUBKEY(pkey, nullptr);
  if (len <= 0) throw Error(ErrorCode::Internal, "i2d_PUBKEY: " + openssl_error());
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  (void)i2d_PUBKEY(pkey, &p);
  return out;
}

EvpPkeyPtr pkey_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    throw Error(ErrorCode::TokenError, std::string("token public key is not a valid ") + type +
                                           " key: " + openssl_error());
  }
  return EvpPkeyPtr(pkey);
}

Bytes rsa_spki(const Bytes& modulus, const Bytes& exponent) {
  BnPtr n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  BnPtr e(BN_bin2bn(exponent.data(), static_cast<int>(exponent.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!n || !e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    throw Error(ErrorCode::Internal, "OSSL_PARAM_BLD: " + openssl_error());
  }
  return pkey_to_spki(pkey_from_params("RSA", bld.get()).get());
}

Bytes ec_spki(const Bytes& params_der, const Bytes& point_der) {
  const unsigned char* p = params_der.data();
  std::unique_ptr<ASN1_OBJECT, FnDeleter<ASN1_OBJECT_free>> oid(
      d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params_der.size())));
  const int nid = oid ? OBJ_obj2nid(oid.get()) : NID_undef;
  const char* group = nid != NID_undef ? OBJ_nid2sn(nid) : nullptr;
  if (group == nullptr) throw Error(ErrorCode::AlgorithmUnsupported, "EC key on an unknown curve");
  // CKA_EC_POINT is a DER OCTET STRING by the standard; some modules give the bare point.
  Bytes point = point_der;
  const unsigned char* q = point_der.data();
  std::unique_ptr<ASN1_OCTET_STRING, FnDeleter<ASN1_OCTET_STRING_free>> os(
      d2i_ASN1_OCTET_STRING(nullptr, &q, static_cast<long>(point_der.size())));
  if (os && q == point_der.data() + point_der.size()) {
    point.assign(ASN1_STRING_get0_data(os.get()),
                 ASN1_STRING_get0_data(os.get()) + ASN1_STRING_length(os.get()));
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    throw Error(ErrorCode::Internal, "OSSL_PARAM_BLD: " + openssl_error());
  }
  return pkey_to_spki(pkey_from_params("EC", bld.get()).get());
}

// The public half of the key pair `id`: from the public key object, or from the private key's
// public attributes when the token keeps no public key object.
Bytes public_key_spki(const Module& m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const Bytes& id,
                      CK_KEY_TYPE type) {
  CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
  std::array<CK_ATTRIBUTE, 2> tmpl{
      {{CKA_CLASS, &cls, sizeof cls},
       {CKA_ID, const_cast<std::uint8_t*>(id.data()), static_cast<CK_ULONG>(id.size())}}};
  const auto pubs = find_objects(m, s, tmpl);
  const CK_OBJECT_HANDLE o = pubs.empty() ? priv : pubs.front();
  if (type == CKK_RSA) {
    const Bytes n = read_attribute(m, s, o, CKA_MODULUS);
    const Bytes e = read_attribute(m, s, o, CKA_PUBLIC_EXPONENT);
    return n.empty() || e.empty() ? Bytes{} : rsa_spki(n, e);
  }
  if (type == CKK_EC) {
    const Bytes params = read_attribute(m, s, o, CKA_EC_PARAMS);
    const Bytes point = read_attribute(m, s, o, CKA_EC_POINT);
    return params.empty() || point.empty() ? Bytes{} : ec_spki(params, point);
  }
  return {};
}

std::string as_string(const Bytes& b) {
  return {b.begin(), b.end()};
}

}  // namespace

std::string_view to_string(KeyAlgorithm alg) noexcept {
  switch (alg) {
    case KeyAlgorithm::Rsa3072:
      return "rsa3072";
    case KeyAlgorithm::EcP256:
      return "ec-p256";
    case KeyAlgorithm::Rsa2048:
      break;
  }
  return "rsa2048";
}

std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view name) noexcept {
  if (name == "rsa2048" || name == "rsa-2048") return KeyAlgorithm::Rsa2048;
  if (name == "rsa3072" || name == "rsa-3072") return KeyAlgorithm::Rsa3072;
  if (name == "ec-p256" || name == "ecdsa-p256" || name == "p256") return KeyAlgorithm::EcP256;
  return std::nullopt;
}

Admin::Admin(const std::string& module_path) : module_(detail::Module::load(module_path)) {}
Admin::~Admin() = default;

const std::string& Admin::module_path() const noexcept {
  return module_->path();
}

std::vector<SlotState> Admin::slots() {
  CK_ULONG n = 0;
  KYSO_CK(*module_, C_GetSlotList, CK_BBOOL{CK_TRUE}, nullptr, &n);
  std::vector<CK_SLOT_ID> ids(n);
  if (n > 0) KYSO_CK(*module_, C_GetSlotList, CK_BBOOL{CK_TRUE}, ids.data(), &n);
  ids.resize(n);
  std::vector<SlotState> out;
  for (CK_SLOT_ID id : ids) {
    CK_TOKEN_INFO ti{};
    if (module_->invoke<&CK_FUNCTION_LIST::C_GetTokenInfo>(id, &ti) != CKR_OK) continue;
    SlotState s;
    s.slot_id = id;
    s.label = detail::fixed_string(ti.label, sizeof ti.label);
    s.serial = detail::fixed_string(ti.serialNumber, sizeof ti.serialNumber);
    s.model = detail::fixed_string(ti.model, sizeof ti.model);
    s.initialized = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
    s.user_pin_initialized = (ti.flags & CKF_USER_PIN_INITIALIZED) != 0;
    s.user_pin_locked = (ti.flags & CKF_USER_PIN_LOCKED) != 0;
    s.so_pin_locked = (ti.flags & CKF_SO_PIN_LOCKED) != 0;
    s.min_pin = ti.ulMinPinLen;
    s.max_pin = ti.ulMaxPinLen;
    out.push_back(std::move(s));
  }
  return out;
}

void Admin::init_token(unsigned long slot, const Secret& so_pin, std::string_view label) {
  if (label.empty() || label.size() > 32) {
    throw Error(ErrorCode::BadRequest,
                "token label must be 1..32 bytes (UTF-8), got " + std::to_string(label.size()));
  }
  std::array<unsigned char, 32> padded{};
  padded.fill(' ');
  std::ranges::copy(label, padded.begin());
  KYSO_CK(*module_, C_InitToken, CK_SLOT_ID{slot}, const_cast<unsigned char*>(so_pin.data()),
          static_cast<CK_ULONG>(so_pin.size()), padded.data());
}

AdminSession Admin::open(unsigned long slot) {
  return AdminSession(module_, slot);
}

AdminSession::AdminSession(std::shared_ptr<detail::Module> module, unsigned long slot)
    : module_(std::move(module)) {
  CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
  KYSO_CK(*module_, C_OpenSession, CK_SLOT_ID{slot}, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
          nullptr, &h);
  session_ = h;
}

AdminSession::AdminSession(AdminSession&& other) noexcept
    : module_(std::move(other.module_)),
      session_(std::exchange(other.session_, 0)),
      logged_in_(std::exchange(other.logged_in_, false)) {}

AdminSession::~AdminSession() {
  if (session_ == 0) return;
  logout();
  (void)module_->invoke<&CK_FUNCTION_LIST::C_CloseSession>(CK_SESSION_HANDLE{session_});
}

void AdminSession::login_so(const Secret& so_pin) {
  KYSO_CK(*module_, C_Login, CK_SESSION_HANDLE{session_}, CKU_SO,
          const_cast<unsigned char*>(so_pin.data()), static_cast<CK_ULONG>(so_pin.size()));
  logged_in_ = true;
}

void AdminSession::login_user(const Secret& pin) {
  const CK_RV rv = module_->invoke<&CK_FUNCTION_LIST::C_Login>(
      CK_SESSION_HANDLE{session_}, CKU_USER, const_cast<unsigned char*>(pin.data()),
      static_cast<CK_ULONG>(pin.size()));
  if (rv == CKR_USER_ALREADY_LOGGED_IN) return;  // another session of ours holds the login
  if (rv != CKR_OK) detail::throw_rv(rv, "C_Login", __func__);
  logged_in_ = true;
}

void AdminSession::logout() noexcept {
  if (!logged_in_) return;
  (void)module_->invoke<&CK_FUNCTION_LIST::C_Logout>(CK_SESSION_HANDLE{session_});
  logged_in_ = false;
}

void AdminSession::init_user_pin(const Secret& new_pin) {
  KYSO_CK(*module_, C_InitPIN, CK_SESSION_HANDLE{session_},
          const_cast<unsigned char*>(new_pin.data()), static_cast<CK_ULONG>(new_pin.size()));
}

void AdminSession::set_pin(const Secret& old_pin, const Secret& new_pin) {
  KYSO_CK(*module_, C_SetPIN, CK_SESSION_HANDLE{session_},
          const_cast<unsigned char*>(old_pin.data()), static_cast<CK_ULONG>(old_pin.size()),
          const_cast<unsigned char*>(new_pin.data()), static_cast<CK_ULONG>(new_pin.size()));
}

KeyPairInfo AdminSession::generate_key_pair(KeyAlgorithm alg, std::span<const std::uint8_t> id,
                                            std::string_view label) {
  if (id.empty()) throw Error(ErrorCode::BadRequest, "a key pair needs a CKA_ID");
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  CK_ULONG bits = alg == KeyAlgorithm::Rsa3072 ? 3072UL : 2048UL;
  std::array<unsigned char, 3> exponent{0x01, 0x00, 0x01};
  auto* id_ptr = const_cast<std::uint8_t*>(id.data());
  const auto id_len = static_cast<CK_ULONG>(id.size());
  auto* label_ptr = const_cast<char*>(label.data());
  const auto label_len = static_cast<CK_ULONG>(label.size());

  std::vector<CK_ATTRIBUTE> pub{
      {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &no, sizeof no},
      {CKA_VERIFY, &yes, sizeof yes},    {CKA_ENCRYPT, &no, sizeof no},
      {CKA_WRAP, &no, sizeof no},        {CKA_ID, id_ptr, id_len},
      {CKA_LABEL, label_ptr, label_len},
  };
  std::vector<CK_ATTRIBUTE> priv{
      {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
      {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
      {CKA_SIGN, &yes, sizeof yes},      {CKA_DECRYPT, &no, sizeof no},
      {CKA_UNWRAP, &no, sizeof no},      {CKA_ID, id_ptr, id_len},
      {CKA_LABEL, label_ptr, label_len},
  };
  CK_MECHANISM mech{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  auto p256 = kP256Params;
  if (alg == KeyAlgorithm::EcP256) {
    mech.mechanism = CKM_EC_KEY_PAIR_GEN;
    pub.push_back({CKA_EC_PARAMS, p256.data(), CK_ULONG{p256.size()}});
  } else {
    pub.push_back({CKA_MODULUS_BITS, &bits, sizeof bits});
    pub.push_back({CKA_PUBLIC_EXPONENT, exponent.data(), CK_ULONG{exponent.size()}});
  }
  CK_OBJECT_HANDLE pub_h = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv_h = CK_INVALID_HANDLE;
  KYSO_CK(*module_, C_GenerateKeyPair, CK_SESSION_HANDLE{session_}, &mech, pub.data(),
          static_cast<CK_ULONG>(pub.size()), priv.data(), static_cast<CK_ULONG>(priv.size()),
          &pub_h, &priv_h);
  KeyPairInfo info;
  info.id.assign(id.begin(), id.end());
  info.label = std::string(label);
  info.key_type = alg == KeyAlgorithm::EcP256 ? "EC" : "RSA";
  info.spki = public_key_spki(*module_, session_, priv_h, info.id,
                              alg == KeyAlgorithm::EcP256 ? CKK_EC : CKK_RSA);
  return info;
}

std::vector<KeyPairInfo> AdminSession::key_pairs() {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  std::array<CK_ATTRIBUTE, 1> tmpl{{{CKA_CLASS, &cls, sizeof cls}}};
  std::vector<KeyPairInfo> out;
  for (CK_OBJECT_HANDLE o : find_objects(*module_, session_, tmpl)) {
    KeyPairInfo k;
    k.id = read_attribute(*module_, session_, o, CKA_ID);
    k.label = as_string(read_attribute(*module_, session_, o, CKA_LABEL));
    const CK_KEY_TYPE type = read_ulong(*module_, session_, o, CKA_KEY_TYPE);
    k.key_type = type == CKK_RSA ? "RSA" : type == CKK_EC ? "EC" : "other";
    k.spki = public_key_spki(*module_, session_, o, k.id, type);
    out.push_back(std::move(k));
  }
  return out;
}

std::optional<KeyPairInfo> AdminSession::find_key_pair(std::span<const std::uint8_t> spki) {
  for (auto& k : key_pairs()) {
    if (!k.spki.empty() && std::ranges::equal(k.spki, spki)) return std::move(k);
  }
  return std::nullopt;
}

std::vector<CertObject> AdminSession::certificates() {
  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  std::array<CK_ATTRIBUTE, 1> tmpl{{{CKA_CLASS, &cls, sizeof cls}}};
  std::vector<CertObject> out;
  for (CK_OBJECT_HANDLE o : find_objects(*module_, session_, tmpl)) {
    out.push_back({read_attribute(*module_, session_, o, CKA_ID),
                   as_string(read_attribute(*module_, session_, o, CKA_LABEL)),
                   read_attribute(*module_, session_, o, CKA_VALUE)});
  }
  return out;
}

void AdminSession::import_certificate(std::span<const std::uint8_t> der,
                                      std::span<const std::uint8_t> id, std::string_view label,
                                      bool is_ca) {
  X509Ptr cert = x509_from_der(der);
  auto encode = [](auto* obj, auto i2d) {
    const int len = i2d(obj, nullptr);
    Bytes out(len > 0 ? static_cast<std::size_t>(len) : 0U);
    unsigned char* p = out.data();
    if (len > 0) (void)i2d(obj, &p);
    return out;
  };
  Bytes subject = encode(X509_get_subject_name(cert.get()), i2d_X509_NAME);
  Bytes issuer = encode(X509_get_issuer_name(cert.get()), i2d_X509_NAME);
  Bytes serial = encode(X509_get_serialNumber(cert.get()), i2d_ASN1_INTEGER);

  CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
  CK_CERTIFICATE_TYPE type = CKC_X_509;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  CK_ULONG category = is_ca ? 2UL : 1UL;  // CK_CERTIFICATE_CATEGORY_AUTHORITY / _TOKEN_USER
  std::vector<CK_ATTRIBUTE> tmpl{
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_CERTIFICATE_TYPE, &type, sizeof type},
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &no, sizeof no},
      {CKA_MODIFIABLE, &yes, sizeof yes},
      {CKA_CERTIFICATE_CATEGORY, &category, sizeof category},
      {CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())},
      {CKA_ID, const_cast<std::uint8_t*>(id.data()), static_cast<CK_ULONG>(id.size())},
      {CKA_SUBJECT, subject.data(), static_cast<CK_ULONG>(subject.size())},
      {CKA_ISSUER, issuer.data(), static_cast<CK_ULONG>(issuer.size())},
      {CKA_SERIAL_NUMBER, serial.data(), static_cast<CK_ULONG>(serial.size())},
      {CKA_VALUE, const_cast<std::uint8_t*>(der.data()), static_cast<CK_ULONG>(der.size())},
  };
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  KYSO_CK(*module_, C_CreateObject, CK_SESSION_HANDLE{session_}, tmpl.data(),
          static_cast<CK_ULONG>(tmpl.size()), &h);
}

}  // namespace kyso::pkcs11
