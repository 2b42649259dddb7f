#include "kyso/formats/cms.hpp"

#include <openssl/cms.h>
#include <openssl/ess.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "der.hpp"
#include "two_phase.hpp"

namespace kyso::formats {
namespace {

using detail::check;
using detail::CmsPtr;
using detail::der_wrap;
using detail::read_tlv;
using detail::Tlv;
using AlgorPtr = std::unique_ptr<X509_ALGOR, FnDeleter<X509_ALGOR_free>>;
using PssPtr = std::unique_ptr<RSA_PSS_PARAMS, FnDeleter<RSA_PSS_PARAMS_free>>;
using EssPtr = std::unique_ptr<ESS_SIGNING_CERT_V2, FnDeleter<ESS_SIGNING_CERT_V2_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, FnDeleter<ASN1_TIME_free>>;

// RSASSA-PSS parameters as the token signs them: the same hash for the message and MGF1, salt
// as long as the digest (RFC 4055).
void set_pss_algorithm(X509_ALGOR* sig_alg, SignAlgorithm alg) {
  const EVP_MD* md = detail::evp_md(hash_of(alg));
  PssPtr pss(RSA_PSS_PARAMS_new());
  check(pss != nullptr, "RSA_PSS_PARAMS_new");
  pss->hashAlgorithm = X509_ALGOR_new();
  check(pss->hashAlgorithm != nullptr, "X509_ALGOR_new");
  X509_ALGOR_set_md(pss->hashAlgorithm, md);
  AlgorPtr mgf_hash(X509_ALGOR_new());
  check(mgf_hash != nullptr, "X509_ALGOR_new");
  X509_ALGOR_set_md(mgf_hash.get(), md);
  ASN1_STRING* mgf_param = nullptr;
  check(ASN1_item_pack(mgf_hash.get(), ASN1_ITEM_rptr(X509_ALGOR), &mgf_param) != nullptr,
        "MGF1 parameters");
  pss->maskGenAlgorithm = X509_ALGOR_new();
  check(pss->maskGenAlgorithm != nullptr, "X509_ALGOR_new");
  X509_ALGOR_set0(pss->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE, mgf_param);
  pss->saltLength = ASN1_INTEGER_new();
  check(pss->saltLength != nullptr &&
            ASN1_INTEGER_set(pss->saltLength, static_cast<long>(digest_size(hash_of(alg)))) == 1,
        "PSS salt length");
  ASN1_STRING* params = nullptr;
  check(ASN1_item_pack(pss.get(), ASN1_ITEM_rptr(RSA_PSS_PARAMS), &params) != nullptr,
        "PSS parameters");
  X509_ALGOR_set0(sig_alg, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, params);
}

// The signed attributes as signed: DER SET OF, elements in ascending order of their encodings
// (the order OpenSSL writes them in too).
Bytes encode_signed_attributes(CMS_SignerInfo* si) {
  std::vector<Bytes> parts;
  const int count = CMS_signed_get_attr_count(si);
  for (int i = 0; i < count; ++i) {
    parts.push_back(detail::i2d_bytes(CMS_signed_get_attr(si, i), i2d_X509_ATTRIBUTE));
  }
  std::ranges::sort(parts);
  Bytes content;
  for (const auto& p : parts) content.insert(content.end(), p.begin(), p.end());
  return der_wrap(0x31, content);
}

// What every signature by one credential shares, parsed once: signing a batch of a thousand
// transcripts should not parse the same certificates a thousand times.
struct SignerMaterial {
  std::vector<Bytes> chain_der;  // what the certificates were parsed from
  X509Ptr cert;
  std::vector<X509Ptr> chain;
  Bytes ess_der;  // ESS signing-certificate-v2 attribute value
  // The CMS templates (two_phase.hpp) of this signer's PAdES signatures, by algorithm and
  // whether the chain is included.
  mutable std::mutex mutex;
  mutable std::map<std::pair<SignAlgorithm, bool>, std::shared_ptr<const detail::CmsTemplate>>
      templates;
};

std::shared_ptr<const SignerMaterial> material_for(const Credential& cred) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const SignerMaterial>> cache;
  const std::scoped_lock lock(mutex);
  if (auto it = cache.find(cred.id()); it != cache.end() && it->second->chain_der == cred.chain)
    return it->second;
  auto m = std::make_shared<SignerMaterial>();
  m->chain_der = cred.chain;
  m->cert = x509_from_der(cred.cert.der);
  for (const auto& der : cred.chain) m->chain.push_back(x509_from_der(der));
  // ESS signing-certificate-v2 (RFC 5035): binds the signer's certificate into what is signed.
  EssPtr ess(OSSL_ESS_signing_cert_v2_new_init(EVP_sha256(), m->cert.get(), nullptr, 1));
  check(ess != nullptr, "ESS signing-certificate-v2");
  m->ess_der = detail::i2d_bytes(ess.get(), i2d_ESS_SIGNING_CERT_V2);
  // A handful of credentials per process in practice; cleared before the new entry goes in
  // (clearing after taking a reference to its slot freed the slot under it).
  if (cache.size() >= 64) cache.clear();
  cache.insert_or_assign(cred.id(), m);
  return m;
}

}  // namespace

namespace detail {

CmsPending cms_prepare(const Credential& cred, std::span<const std::uint8_t> content_digest,
                       std::optional<std::span<const std::uint8_t>> attached, const CmsOptions& o) {
  const auto material = material_for(cred);
  X509* cert = material->cert.get();
  const EVP_MD* md = detail::evp_md(hash_of(o.algorithm));
  if (is_ecdsa(o.algorithm) != (cred.cert.key_type == "EC")) {
    throw Error(
        ErrorCode::AlgorithmUnsupported,
        std::string(to_string(o.algorithm)) + " does not fit a " + cred.cert.key_type + " key");
  }

  CmsPending p;
  p.cms.reset(CMS_sign(nullptr, nullptr, nullptr, nullptr, CMS_PARTIAL | CMS_BINARY));
  check(p.cms != nullptr, "CMS_sign");
  CMS_ContentInfo* cms = p.cms.get();
  // The certificate's public key stands in for the private key: OpenSSL only uses it to fill
  // the signer identifier and algorithms; the signature itself comes from the Signer.
  CMS_SignerInfo* si = CMS_add1_signer(cms, cert, X509_get0_pubkey(cert), md,
                                       CMS_PARTIAL | CMS_BINARY | CMS_NOSMIMECAP);
  check(si != nullptr, "CMS_add1_signer");
  p.si = si;
  if (o.include_chain) {
    for (const auto& ca : material->chain)
      check(CMS_add1_cert(cms, ca.get()) == 1, "CMS_add1_cert");
  }

  check(CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                    OBJ_nid2obj(NID_pkcs7_data), -1) == 1,
        "contentType");
  if (o.signing_time) {
    TimePtr now(o.time ? ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(*o.time))
                       : X509_gmtime_adj(nullptr, 0));
    check(now != nullptr &&
              CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, now->type, now.get(), -1) == 1,
          "signingTime");
  }
  check(CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING,
                                    content_digest.data(),
                                    static_cast<int>(content_digest.size())) == 1,
        "messageDigest");
  const Bytes& ess_der = material->ess_der;
  check(CMS_signed_add1_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, V_ASN1_SEQUENCE,
                                    ess_der.data(), static_cast<int>(ess_der.size())) == 1,
        "signingCertificateV2");

  if (is_pss(o.algorithm)) {
    X509_ALGOR* sig_alg = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &sig_alg);
    set_pss_algorithm(sig_alg, o.algorithm);
  }

  if (attached) {
    check(CMS_set_detached(cms, 0) == 1, "CMS_set_detached");
    ASN1_OCTET_STRING** pos = CMS_get0_content(cms);
    check(pos != nullptr && *pos != nullptr, "CMS_get0_content");
    check(ASN1_OCTET_STRING_set(*pos, attached->data(), static_cast<int>(attached->size())) == 1,
          "content");
    (*pos)->flags &= ~ASN1_STRING_FLAG_CONT;  // real content here, not a streaming placeholder
  } else {
    check(CMS_set_detached(cms, 1) == 1, "CMS_set_detached");
  }

  const Bytes attrs = encode_signed_attributes(si);
  p.tbs = digest(openssl_md_name(hash_of(o.algorithm)), attrs);
  return p;
}

Bytes cms_embed(CmsPending& p, std::span<const std::uint8_t> signature,
                const std::optional<TsaConfig>& tsa) {
  check(ASN1_STRING_set(CMS_SignerInfo_get0_signature(p.si), signature.data(),
                        static_cast<int>(signature.size())) == 1,
        "signature value");
  if (tsa) {
    const Timestamp ts = request_timestamp(*tsa, signature);
    check(CMS_unsigned_add1_attr_by_NID(p.si, NID_id_smime_aa_timeStampToken, V_ASN1_SEQUENCE,
                                        ts.token.data(), static_cast<int>(ts.token.size())) == 1,
          "signatureTimeStampToken");
  }
  return detail::i2d_bytes(p.cms.get(), i2d_CMS_ContentInfo);
}

namespace {

// The stand-in for the messageDigest: a value no certificate or algorithm in the CMS contains.
Bytes template_digest(HashAlgorithm hash) {
  constexpr std::string_view kSeed = "kyso: CMS template messageDigest";
  return digest(openssl_md_name(hash), detail::as_bytes(kSeed));
}

}  // namespace

CmsTemplate cms_template(const Credential& cred, const CmsOptions& o) {
  check(!o.signing_time && !o.tsa, "CMS template: options");
  CmsTemplate t;
  t.hash = hash_of(o.algorithm);
  const Bytes stand_in = template_digest(t.hash);
  CmsPending p = cms_prepare(cred, stand_in, std::nullopt, o);
  t.der = cms_pending_der(p);
  const Bytes& der = t.der;
  // Down the last elements: ContentInfo, [0], SignedData, signerInfos, SignerInfo, signature.
  std::size_t at = 0;
  for (int level = 0; level < 5; ++level) {
    const Tlv tlv = read_tlv(der, at, der.size());
    check(tlv.end() == der.size() && (tlv.tag & 0x20U) != 0, "CMS template: structure");
    t.enclosing.push_back(at);
    std::size_t last = tlv.start + tlv.header;
    for (std::size_t child = last; child < der.size();) {
      last = child;
      const Tlv c = read_tlv(der, child, der.size());
      if (level == 4 && c.tag == 0xA0) {  // the SignerInfo's signed attributes
        t.attrs_at = child;
        t.attrs_size = c.header + c.length;
      }
      child = c.end();
    }
    at = last;
  }
  const Tlv sig = read_tlv(der, at, der.size());
  check(sig.tag == 0x04 && sig.length == 0 && sig.end() == der.size() && t.attrs_size != 0,
        "CMS template: signature");
  t.signature_at = at;
  const X509Ptr cert = x509_from_der(cred.cert.der);
  const int max_signature = EVP_PKEY_get_size(X509_get0_pubkey(cert.get()));
  check(max_signature > 0, "CMS template: key size");
  t.max_signature = static_cast<std::size_t>(max_signature);
  // The stand-in occurs once, inside the signed attributes.
  const auto attrs_end = der.begin() + static_cast<std::ptrdiff_t>(t.attrs_at + t.attrs_size);
  const auto found = std::search(der.begin(), der.end(), stand_in.begin(), stand_in.end());
  check(found != der.end() && found < attrs_end &&
            std::search(found + 1, der.end(), stand_in.begin(), stand_in.end()) == der.end(),
        "CMS template: messageDigest");
  t.digest_at = static_cast<std::size_t>(found - der.begin());
  check(t.digest_at > t.attrs_at, "CMS template: messageDigest");
  check(cms_template_tbs(t, stand_in) == p.tbs, "CMS template: signed attributes");
  return t;
}

std::shared_ptr<const CmsTemplate> cms_template_for(const Credential& cred, const CmsOptions& o) {
  const auto material = material_for(cred);
  const std::pair key{o.algorithm, o.include_chain};
  {
    const std::scoped_lock lock(material->mutex);
    if (auto it = material->templates.find(key); it != material->templates.end()) return it->second;
  }
  CmsOptions plain;
  plain.algorithm = o.algorithm;
  plain.signing_time = false;
  plain.include_chain = o.include_chain;
  auto t = std::make_shared<const CmsTemplate>(cms_template(cred, plain));
  const std::scoped_lock lock(material->mutex);
  return material->templates.try_emplace(key, std::move(t)).first->second;
}

std::size_t cms_template_max_size(const CmsTemplate& t) {
  // A DER length takes at most 5 octets here (read_tlv's limit); the template's are at least 1.
  return t.der.size() + t.max_signature + 4 * (t.enclosing.size() + 1);
}

Bytes cms_template_tbs(const CmsTemplate& t, std::span<const std::uint8_t> content_digest) {
  check(content_digest.size() == digest_size(t.hash), "CMS template: digest size");
  Bytes attrs(t.der.begin() + static_cast<std::ptrdiff_t>(t.attrs_at),
              t.der.begin() + static_cast<std::ptrdiff_t>(t.attrs_at + t.attrs_size));
  attrs[0] = 0x31;  // signed as the SET OF they are, not as the [0] they are stored as
  std::copy(content_digest.begin(), content_digest.end(),
            attrs.begin() + static_cast<std::ptrdiff_t>(t.digest_at - t.attrs_at));
  return digest(openssl_md_name(t.hash), attrs);
}

Bytes cms_template_fill(const CmsTemplate& t, std::span<const std::uint8_t> content_digest,
                        std::span<const std::uint8_t> signature) {
  check(content_digest.size() == digest_size(t.hash), "CMS template: digest size");
  const Bytes& der = t.der;
  // From the inside out: each TLV that ends with the signature is its other elements, as in
  // the template (the messageDigest filled in), followed by the TLV inside it, wrapped anew.
  Bytes inner = der_wrap(0x04, signature);
  for (std::size_t i = t.enclosing.size(); i-- > 0;) {
    const Tlv tlv = read_tlv(der, t.enclosing[i], der.size());
    const std::size_t from = tlv.start + tlv.header;
    const std::size_t to = i + 1 < t.enclosing.size() ? t.enclosing[i + 1] : t.signature_at;
    Bytes content(der.begin() + static_cast<std::ptrdiff_t>(from),
                  der.begin() + static_cast<std::ptrdiff_t>(to));
    if (t.digest_at >= from && t.digest_at < to) {
      std::copy(content_digest.begin(), content_digest.end(),
                content.begin() + static_cast<std::ptrdiff_t>(t.digest_at - from));
    }
    content.insert(content.end(), inner.begin(), inner.end());
    inner = der_wrap(tlv.tag, content);
  }
  return inner;
}

Bytes cms_pending_der(const CmsPending& p) {
  return detail::i2d_bytes(p.cms.get(), i2d_CMS_ContentInfo);
}

CmsPending cms_pending_from_der(std::span<const std::uint8_t> der) {
  CmsPending p;
  const unsigned char* in = der.data();
  p.cms.reset(d2i_CMS_ContentInfo(nullptr, &in, static_cast<long>(der.size())));
  if (p.cms == nullptr || in != der.data() + der.size()) {
    openssl_error();
    throw Error(ErrorCode::PreparedStateInvalid, "the prepared CMS does not parse");
  }
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(p.cms.get());
  if (infos == nullptr || sk_CMS_SignerInfo_num(infos) != 1) {
    throw Error(ErrorCode::PreparedStateInvalid, "the prepared CMS has no single signer");
  }
  p.si = sk_CMS_SignerInfo_value(infos, 0);
  return p;
}

}  // namespace detail

namespace {

// The single call: the two steps of two-phase signing (prepare.hpp) with the signer between.
Bytes build_and_sign(Signer& signer, std::span<const std::uint8_t> content_digest,
                     std::optional<std::span<const std::uint8_t>> attached, const CmsOptions& o) {
  detail::CmsPending p = detail::cms_prepare(signer.credential(), content_digest, attached, o);
  const Bytes sig = signer.sign_digest(o.algorithm, p.tbs, SignatureEncoding::Der);
  return detail::cms_embed(p, sig, o.tsa);
}

}  // namespace

Bytes sign_cms(Signer& signer, std::span<const std::uint8_t> content, const CmsOptions& options) {
  const Bytes md = digest(openssl_md_name(hash_of(options.algorithm)), content);
  return build_and_sign(signer, md, options.detached ? std::nullopt : std::optional(content),
                        options);
}

Bytes sign_cms_digest(Signer& signer, std::span<const std::uint8_t> content_digest,
                      const CmsOptions& options) {
  check_digest(options.algorithm, content_digest);
  return build_and_sign(signer, content_digest, std::nullopt, options);
}

HashSignature sign_hash(Signer& signer, SignAlgorithm algorithm,
                        std::span<const std::uint8_t> digest_value) {
  check_digest(algorithm, digest_value);
  HashSignature out;
  out.signature = signer.sign_digest(algorithm, digest_value, SignatureEncoding::Der);
  const Credential& cred = signer.credential();
  out.chain.push_back(cred.cert.der);
  out.chain.insert(out.chain.end(), cred.chain.begin(), cred.chain.end());
  return out;
}

}  // namespace kyso::formats
