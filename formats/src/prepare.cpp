// Two-phase signing (prepare.hpp): each format's two steps (two_phase.hpp) run on two sides,
// with a versioned, HMAC-protected state between them.

#include "kyso/formats/prepare.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "kyso/core/random.hpp"
#include "two_phase.hpp"

namespace kyso::formats {
namespace {

// The encoding, version 1:
//   "KYSOPREP" | version (1 byte) | format (1 byte) | field count (2 bytes, big-endian)
//   | per field: length (4 bytes, big-endian) + bytes | HMAC-SHA-256 of all that (32 bytes)
// Fields: algorithm name, signer certificate (DER), digest, timestamp wanted ("1" or ""),
// then per format: CMS: the pending CMS; XML: the prepared document, the Signature's Id and
// (optional, states written before it lack it) the offset of its empty SignatureValue's content;
// PDF: the prepared document, the offset of /Contents and its room, the pending CMS, the field.
constexpr std::string_view kMagic = "KYSOPREP";
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kMacSize = 32;

enum Field : std::size_t { kAlgorithm, kCertificate, kDigest, kTimestamp, kChain, kCommon };

using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, FnDeleter<EVP_MAC_CTX_free>>;

// An HMAC-SHA-256 context keyed with `key` that has taken `prefix`.
MacCtxPtr mac_context(const StateKey& key, std::span<const std::uint8_t> prefix) {
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  MacCtxPtr ctx(hmac != nullptr ? EVP_MAC_CTX_new(hmac) : nullptr);
  std::array<char, 8> sha256_name{"SHA256"};
  const std::array<OSSL_PARAM, 2> params{
      OSSL_PARAM_construct_utf8_string("digest", sha256_name.data(), 0), OSSL_PARAM_END};
  if (!ctx || EVP_MAC_init(ctx.get(), key.bytes.data(), key.bytes.size(), params.data()) != 1 ||
      EVP_MAC_update(ctx.get(), prefix.data(), prefix.size()) != 1) {
    throw Error(ErrorCode::Internal, "HMAC: " + openssl_error());
  }
  return ctx;
}

// A copy of the context that has taken the key and `prefix` (a state's head up to the signer's
// certificate, the same for all of a signer's states), which costs less than keying one and
// hashing the certificate again. The MAC is unchanged: HMAC over the same bytes in the same order.
MacCtxPtr mac_after(const StateKey& key, std::span<const std::uint8_t> prefix) {
  struct Entry {
    Bytes key;
    Bytes prefix;
    MacCtxPtr ctx;
  };
  static std::mutex mutex;
  static std::vector<Entry> cache;
  auto same = [](const Bytes& a, std::span<const std::uint8_t> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), b.size()) == 0;
  };
  {
    const std::scoped_lock lock(mutex);
    for (const auto& e : cache) {
      if (same(e.key, key.bytes) && same(e.prefix, prefix)) {
        MacCtxPtr copy(EVP_MAC_CTX_dup(e.ctx.get()));
        if (!copy) throw Error(ErrorCode::Internal, "HMAC: " + openssl_error());
        return copy;
      }
    }
  }
  MacCtxPtr ctx = mac_context(key, prefix);
  MacCtxPtr copy(EVP_MAC_CTX_dup(ctx.get()));
  if (!copy) throw Error(ErrorCode::Internal, "HMAC: " + openssl_error());
  const std::scoped_lock lock(mutex);
  if (cache.size() >= 16) cache.clear();
  cache.push_back({key.bytes, Bytes(prefix.begin(), prefix.end()), std::move(ctx)});
  return copy;
}

// HMAC-SHA-256 over `head` then `tail`; `head`'s first `prefix` bytes are a signer's (mac_after).
Bytes mac(const StateKey& key, std::span<const std::uint8_t> head,
          std::span<const std::uint8_t> tail = {}, std::size_t prefix = 0) {
  if (key.bytes.size() < 16)
    throw Error(ErrorCode::ConfigInvalid, "the state key must be at least 16 bytes");
  // A state's head is not yet authenticated: only a certificate-sized prefix is kept.
  if (prefix > head.size() || prefix > 64 * 1024) prefix = 0;
  MacCtxPtr ctx = prefix > 0 ? mac_after(key, head.first(prefix)) : mac_context(key, {});
  Bytes out(EVP_MAX_MD_SIZE);
  std::size_t len = 0;
  if (EVP_MAC_update(ctx.get(), head.data() + prefix, head.size() - prefix) != 1 ||
      EVP_MAC_update(ctx.get(), tail.data(), tail.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1) {
    throw Error(ErrorCode::Internal, "HMAC: " + openssl_error());
  }
  out.resize(len);
  return out;
}

// A PDF state's prepared document is not in the MAC: embed checks it against the byte-range
// digest the MAC covers (in the CMS recipe), so the document is hashed once at each end.
bool unmacced(PreparedFormat format, std::size_t field) {
  return format == PreparedFormat::Pdf && field == 5;  // kCommon: the document
}

void put_be(Bytes& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<std::uint8_t>((v >> (8U * static_cast<unsigned>(i))) & 0xFFU));
}

Bytes as_field(std::string_view s) {
  return {s.begin(), s.end()};
}
std::string as_string(const Bytes& b) {
  return {b.begin(), b.end()};
}

Bytes encode(const StateKey& key, PreparedFormat format, const std::vector<Bytes>& fields) {
  Bytes out;
  std::size_t total = kMagic.size() + 4 + kMacSize;
  for (const auto& f : fields) total += 4 + f.size();
  out.reserve(total);
  for (const char c : kMagic) out.push_back(static_cast<std::uint8_t>(c));
  out.push_back(kVersion);
  out.push_back(static_cast<std::uint8_t>(format));
  put_be(out, fields.size(), 2);
  std::size_t skip_from = 0;
  std::size_t skip_to = 0;
  std::size_t signer_end = 0;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    put_be(out, fields[i].size(), 4);
    if (unmacced(format, i)) {
      skip_from = out.size();
      skip_to = skip_from + fields[i].size();
    }
    out.insert(out.end(), fields[i].begin(), fields[i].end());
    if (i == kCertificate) signer_end = out.size();
  }
  const std::span<const std::uint8_t> all(out);
  const Bytes tag = skip_to == 0 ? mac(key, all, {}, signer_end)
                                 : mac(key, all.first(skip_from), all.subspan(skip_to), signer_end);
  out.insert(out.end(), tag.begin(), tag.end());
  return out;
}

struct Decoded {
  PreparedFormat format = PreparedFormat::Cms;
  std::vector<Bytes> fields;
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
};

Decoded decode(std::span<const std::uint8_t> state, const StateKey& key) {
  auto invalid = [](const std::string& why) { return Error(ErrorCode::PreparedStateInvalid, why); };
  if (state.size() < kMagic.size() + 4 + kMacSize ||
      std::memcmp(state.data(), kMagic.data(), kMagic.size()) != 0) {
    throw invalid("not a Kyso prepared state");
  }
  if (state[kMagic.size()] != kVersion) {
    throw invalid("prepared state version " + std::to_string(state[kMagic.size()]) +
                  " (this Kyso reads version " + std::to_string(kVersion) + ")");
  }
  const auto body = state.first(state.size() - kMacSize);
  // The fields are split (bounds checked) before the MAC is checked, which needs to know where
  // an unauthenticated document lies; nothing is used before the MAC matched.
  Decoded d;
  const std::uint8_t format = state[kMagic.size() + 1];
  if (format < 1 || format > 3) throw invalid("unknown format " + std::to_string(format));
  d.format = static_cast<PreparedFormat>(format);
  std::size_t at = kMagic.size() + 2;
  const std::size_t count = (std::size_t{body[at]} << 8U) | body[at + 1];
  at += 2;
  std::size_t skip_from = 0;
  std::size_t skip_to = 0;
  std::size_t signer_end = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (body.size() - at < 4) throw invalid("truncated");
    std::size_t len = 0;
    for (int b = 0; b < 4; ++b) len = (len << 8U) | body[at++];
    if (body.size() - at < len) throw invalid("truncated");
    if (unmacced(d.format, i)) {
      skip_from = at;
      skip_to = at + len;
    }
    d.fields.emplace_back(body.begin() + static_cast<std::ptrdiff_t>(at),
                          body.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
    if (i == kCertificate) signer_end = at;
  }
  if (at != body.size()) throw invalid("malformed");
  const Bytes tag = skip_to == 0
                        ? mac(key, body, {}, signer_end)
                        : mac(key, body.first(skip_from), body.subspan(skip_to), signer_end);
  if (CRYPTO_memcmp(tag.data(), state.data() + body.size(), kMacSize) != 0) {
    throw invalid("the prepared state's MAC does not match (changed, or another server's key)");
  }
  if (d.fields.size() < kCommon) throw invalid("malformed");
  const auto alg = parse_sign_algorithm(as_string(d.fields[kAlgorithm]));
  if (!alg) throw invalid("unknown algorithm");
  d.algorithm = *alg;
  return d;
}

Bytes pack(const std::vector<Bytes>& parts);

std::vector<Bytes> common_fields(SignAlgorithm alg, const Credential& signer, const Bytes& digest,
                                 bool timestamp) {
  return {as_field(to_string(alg)), signer.cert.der, digest, as_field(timestamp ? "1" : ""),
          pack(signer.chain)};
}

// ECDSA signatures arrive as DER (a hash item, CMS) or raw r||s (XML-DSig, JOSE).
Bytes ecdsa_as_der(std::span<const std::uint8_t> sig) {
  if (!sig.empty() && sig[0] == 0x30) {
    const unsigned char* p = sig.data();
    std::unique_ptr<ECDSA_SIG, FnDeleter<ECDSA_SIG_free>> s(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    if (s != nullptr && p == sig.data() + sig.size()) return {sig.begin(), sig.end()};
    openssl_error();
  }
  if (sig.empty() || sig.size() % 2 != 0)
    throw Error(ErrorCode::SignatureMismatch, "not an ECDSA signature");
  return ecdsa_raw_to_der(sig);
}

// A context that verifies `alg` signatures with `cert`'s key (its padding and digest set).
EvpPkeyCtxPtr make_verifier(X509* cert, SignAlgorithm alg) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(X509_get0_pubkey(cert), nullptr));
  bool ok = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
            EVP_PKEY_CTX_set_signature_md(ctx.get(), detail::evp_md(hash_of(alg))) == 1;
  if (ok && is_pss(alg)) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) == 1;
  } else if (ok && is_rsa(alg)) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1;
  }
  if (!ok) ctx.reset();
  return ctx;
}

// The signature must verify over the prepared digest with the prepared certificate's key:
// otherwise it signs something else, or comes from another key, and embedding it would make a
// document that no verifier accepts. `verifier`: from make_verifier (null when that failed).
void check_signature(EVP_PKEY_CTX* verifier, SignAlgorithm alg, const Bytes& digest,
                     std::span<const std::uint8_t> der_sig) {
  const bool ok = verifier != nullptr && EVP_PKEY_verify(verifier, der_sig.data(), der_sig.size(),
                                                         digest.data(), digest.size()) == 1;
  const std::string why = openssl_error();
  if (!ok) {
    throw Error(ErrorCode::SignatureMismatch,
                std::string("the signature does not verify over the prepared digest with the "
                            "prepared certificate's key (") +
                    std::string(to_string(alg)) + ")" + (why.empty() ? "" : ": " + why));
  }
}

// What embedding rebuilds the CMS signed attributes from, instead of parsing a CMS: OpenSSL 3
// decodes each certificate's public key in it through the provider decoders, which cost more
// than the rest of embedding a transcript (perf: 3.7% of bench/format-sign in
// cms_pending_from_der, most of it OSSL_DECODER_CTX_new_for_pkey).
Bytes cms_recipe(const Bytes& content_digest,
                 const std::optional<std::span<const std::uint8_t>>& attached,
                 const CmsOptions& o) {
  Bytes out;
  auto put = [&](std::span<const std::uint8_t> b) {
    put_be(out, b.size(), 4);
    out.insert(out.end(), b.begin(), b.end());
  };
  put(content_digest);
  put(attached ? *attached : std::span<const std::uint8_t>{});
  const std::string flags =
      std::string(attached ? "a" : "d") + (o.signing_time ? "s" : "-") +
      (o.include_chain ? "c" : "-") +
      (o.time ? std::to_string(std::chrono::system_clock::to_time_t(*o.time)) : std::string());
  put(as_field(flags));
  return out;
}

std::vector<Bytes> split(const Bytes& packed) {
  std::vector<Bytes> parts;
  std::size_t at = 0;
  while (at < packed.size()) {
    if (packed.size() - at < 4) throw Error(ErrorCode::PreparedStateInvalid, "malformed");
    std::size_t len = 0;
    for (int b = 0; b < 4; ++b) len = (len << 8U) | packed[at++];
    if (packed.size() - at < len) throw Error(ErrorCode::PreparedStateInvalid, "malformed");
    parts.emplace_back(packed.begin() + static_cast<std::ptrdiff_t>(at),
                       packed.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
  }
  return parts;
}

Bytes pack(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& b : parts) {
    put_be(out, b.size(), 4);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// The signer a state names (certificate and issuers), parsed once per process: a server embeds
// a class's or a school's signatures by one signer. Found by comparing the state's bytes, which
// costs less than hashing them.
struct KnownSigner {
  Bytes cert_der;
  Bytes packed_chain;
  Credential cred;
  X509Ptr cert;
  mutable std::mutex mutex;
  // Set-up verification contexts per algorithm; each check gets a copy, which costs less
  // than setting one up (OpenSSL 3 fetches the algorithm's implementation at each set-up).
  mutable std::map<SignAlgorithm, EvpPkeyCtxPtr> verifiers;
  EvpPkeyCtxPtr verifier(SignAlgorithm alg) const {
    const std::scoped_lock lock(mutex);
    auto& v = verifiers[alg];
    if (!v) v = make_verifier(cert.get(), alg);
    return EvpPkeyCtxPtr(v ? EVP_PKEY_CTX_dup(v.get()) : nullptr);
  }
};
std::shared_ptr<const KnownSigner> known_signer(const Bytes& cert, const Bytes& packed_chain) {
  static std::mutex mutex;
  static std::vector<std::shared_ptr<const KnownSigner>> cache;
  {
    const std::scoped_lock lock(mutex);
    for (const auto& k : cache)
      if (k->cert_der == cert && k->packed_chain == packed_chain) return k;
  }
  std::vector<Bytes> chain{cert};
  for (auto& c : split(packed_chain)) chain.push_back(std::move(c));
  auto k = std::make_shared<KnownSigner>();
  k->cert_der = cert;
  k->packed_chain = packed_chain;
  k->cred = signer_from_chain(chain);
  k->cert = x509_from_der(cert);
  const std::scoped_lock lock(mutex);
  if (cache.size() >= 64) cache.clear();
  cache.push_back(k);
  return k;
}

// The pending CMS a recipe describes; its signed attributes must hash to the prepared digest.
detail::CmsPending cms_from_recipe(const KnownSigner& k, SignAlgorithm alg, const Bytes& recipe,
                                   const Bytes& tbs) {
  const std::vector<Bytes> parts = split(recipe);
  if (parts.size() != 3 || parts[2].size() < 3)
    throw Error(ErrorCode::PreparedStateInvalid, "malformed");
  const std::string flags = as_string(parts[2]);
  CmsOptions o;
  o.algorithm = alg;
  o.signing_time = flags[1] == 's';
  o.include_chain = flags[2] == 'c';
  if (flags.size() > 3) {
    o.time = std::chrono::system_clock::from_time_t(
        static_cast<std::time_t>(std::stoll(flags.substr(3))));
  }
  std::optional<std::span<const std::uint8_t>> attached;
  if (flags[0] == 'a') attached = std::span<const std::uint8_t>(parts[1]);
  detail::CmsPending p = detail::cms_prepare(k.cred, parts[0], attached, o);
  if (p.tbs != tbs) throw Error(ErrorCode::PreparedStateInvalid, "the signed attributes differ");
  return p;
}

// The CMS of a PAdES state, DER. Without a timestamp it is the signer's template filled in
// (two_phase.hpp), whose signed attributes must hash to the prepared digest as the recipe's
// would; with one, the recipe's CMS gets its timestamp from the TSA.
Bytes pdf_cms(const KnownSigner& k, SignAlgorithm alg, const std::vector<Bytes>& recipe,
              const Bytes& packed_recipe, const Bytes& tbs, const Bytes& der_sig,
              const std::optional<TsaConfig>& tsa) {
  if (recipe.size() != 3 || recipe[2].size() < 3)
    throw Error(ErrorCode::PreparedStateInvalid, "malformed");
  const std::string flags = as_string(recipe[2]);
  if (tsa || flags[0] != 'd' || flags[1] != '-' || flags.size() > 3 || !recipe[1].empty()) {
    detail::CmsPending p = cms_from_recipe(k, alg, packed_recipe, tbs);
    return detail::cms_embed(p, der_sig, tsa);
  }
  CmsOptions o;
  o.algorithm = alg;
  o.signing_time = false;
  o.include_chain = flags[2] == 'c';
  const auto t = detail::cms_template_for(k.cred, o);
  if (recipe[0].size() != digest_size(t->hash) || detail::cms_template_tbs(*t, recipe[0]) != tbs)
    throw Error(ErrorCode::PreparedStateInvalid, "the signed attributes differ");
  return detail::cms_template_fill(*t, recipe[0], der_sig);
}

std::size_t number(const Bytes& field) {
  return static_cast<std::size_t>(std::stoull(as_string(field)));
}

}  // namespace

std::string_view to_string(PreparedFormat f) noexcept {
  switch (f) {
    case PreparedFormat::Cms:
      return "cms";
    case PreparedFormat::Xml:
      return "xml";
    case PreparedFormat::Pdf:
      return "pdf";
  }
  return "cms";
}

StateKey StateKey::generate() {
  return {random_bytes(32)};
}

StateKey StateKey::load_or_create(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (in) {
    StateKey k{Bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}};
    if (k.bytes.size() < 16)
      throw Error(ErrorCode::ConfigInvalid, path + ": a state key needs at least 16 bytes");
    return k;
  }
  StateKey k = generate();
  // O_EXCL: two processes starting at once do not each write a different key.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return load_or_create(path);
    throw Error(ErrorCode::ConfigInvalid, "cannot create the state key " + path);
  }
  const bool ok =
      ::write(fd, k.bytes.data(), k.bytes.size()) == static_cast<ssize_t>(k.bytes.size());
  ::close(fd);
  if (!ok) throw Error(ErrorCode::ConfigInvalid, "cannot write the state key " + path);
  return k;
}

Credential signer_from_chain(std::span<const Bytes> chain_leaf_first) {
  if (chain_leaf_first.empty()) throw Error(ErrorCode::CertInvalid, "no signer certificate given");
  Credential c;
  c.cert = parse_certificate(chain_leaf_first.front());
  for (std::size_t i = 1; i < chain_leaf_first.size(); ++i) {
    (void)x509_from_der(chain_leaf_first[i]);  // refuse garbage before it goes into a document
    c.chain.push_back(chain_leaf_first[i]);
  }
  c.algorithms = algorithms_for_key(c.cert);
  c.source.kind = "prepared";
  return c;
}

namespace {

Prepared prepare_cms_over(const Bytes& md, std::optional<std::span<const std::uint8_t>> attached,
                          const Credential& signer, const CmsOptions& o, const StateKey& key) {
  CmsOptions fixed = o;  // embedding rebuilds the signed attributes: the same signing time
  if (fixed.signing_time && !fixed.time)
    fixed.time = std::chrono::system_clock::from_time_t(
        std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
  detail::CmsPending p = detail::cms_prepare(signer, md, attached, fixed);
  std::vector<Bytes> fields = common_fields(o.algorithm, signer, p.tbs, o.tsa.has_value());
  fields.push_back(cms_recipe(md, attached, fixed));
  return {PreparedFormat::Cms, o.algorithm, p.tbs, encode(key, PreparedFormat::Cms, fields)};
}

}  // namespace

Prepared prepare_cms(std::span<const std::uint8_t> content, const Credential& signer,
                     const CmsOptions& o, const StateKey& key) {
  const Bytes md = digest(openssl_md_name(hash_of(o.algorithm)), content);
  const auto attached =
      o.detached ? std::nullopt : std::optional<std::span<const std::uint8_t>>(content);
  return prepare_cms_over(md, attached, signer, o, key);
}

Prepared prepare_cms_digest(std::span<const std::uint8_t> content_digest, const Credential& signer,
                            const CmsOptions& o, const StateKey& key) {
  if (content_digest.size() != digest_size(hash_of(o.algorithm))) {
    throw Error(ErrorCode::DigestInvalid, "the content's digest has the wrong length for " +
                                              std::string(to_string(hash_of(o.algorithm))));
  }
  return prepare_cms_over(Bytes(content_digest.begin(), content_digest.end()), std::nullopt, signer,
                          o, key);
}

Prepared prepare_xml(std::span<const std::uint8_t> xml, const Credential& signer,
                     const XmlSignOptions& o, const StateKey& key) {
  detail::XmlPrepared p = detail::xml_prepare(xml, signer, o);
  std::vector<Bytes> fields =
      common_fields(o.algorithm, signer, p.tbs, o.level == XmlLevel::XadesT);
  fields.push_back(std::move(p.document));
  fields.push_back(as_field(p.signature_id));
  if (p.value_at) fields.push_back(as_field(std::to_string(*p.value_at)));
  return {PreparedFormat::Xml, o.algorithm, p.tbs, encode(key, PreparedFormat::Xml, fields)};
}

Prepared prepare_pdf(std::span<const std::uint8_t> pdf, const Credential& signer,
                     const PdfSignOptions& o, const StateKey& key) {
  detail::PdfPrepared p = detail::pdf_prepare(pdf, signer, o);
  const Bytes tbs = p.tbs;
  std::vector<Bytes> fields = common_fields(o.algorithm, signer, tbs, o.tsa.has_value());
  fields.push_back(std::move(p.document));
  fields.push_back(as_field(std::to_string(p.contents_at)));
  fields.push_back(as_field(std::to_string(p.reserve)));
  CmsOptions co;
  co.signing_time = false;  // PAdES: as pdf_prepare built it
  fields.push_back(cms_recipe(p.content_digest, std::nullopt, co));
  fields.push_back(as_field(p.field_name));
  return {PreparedFormat::Pdf, o.algorithm, tbs, encode(key, PreparedFormat::Pdf, fields)};
}

PreparedInfo inspect_prepared(std::span<const std::uint8_t> state, const StateKey& key) {
  Decoded d = decode(state, key);
  return {d.format, d.algorithm, std::move(d.fields[kDigest]), std::move(d.fields[kCertificate])};
}

Embedded embed(std::span<const std::uint8_t> state, std::span<const std::uint8_t> signature,
               const StateKey& key, const EmbedOptions& o) {
  Decoded d = decode(state, key);
  const Bytes& cert = d.fields[kCertificate];
  if (o.signer_certificate && *o.signer_certificate != cert) {
    throw Error(ErrorCode::CertificateMismatch,
                "the signature comes with certificate " + to_hex(sha256(*o.signer_certificate)) +
                    ", the document was prepared for " + to_hex(sha256(cert)));
  }
  const Bytes der_sig =
      is_ecdsa(d.algorithm) ? ecdsa_as_der(signature) : Bytes(signature.begin(), signature.end());
  const auto known = known_signer(cert, d.fields[kChain]);
  check_signature(known->verifier(d.algorithm).get(), d.algorithm, d.fields[kDigest], der_sig);
  const bool timestamp = !d.fields[kTimestamp].empty();
  if (timestamp && !o.tsa) {
    throw Error(ErrorCode::TsaNotConfigured,
                "the document was prepared for a timestamped signature (B-T)");
  }
  const std::optional<TsaConfig> tsa = timestamp ? o.tsa : std::nullopt;
  auto need = [&](std::size_t n) {
    if (d.fields.size() != kCommon + n) throw Error(ErrorCode::PreparedStateInvalid, "malformed");
  };
  Embedded out;
  out.format = d.format;
  switch (d.format) {
    case PreparedFormat::Cms: {
      need(1);
      detail::CmsPending p =
          cms_from_recipe(*known, d.algorithm, d.fields[kCommon], d.fields[kDigest]);
      out.document = detail::cms_embed(p, der_sig, tsa);
      break;
    }
    case PreparedFormat::Xml: {
      if (d.fields.size() != kCommon + 3) need(2);
      out.id = as_string(d.fields[kCommon + 1]);
      std::optional<std::size_t> value_at;
      if (d.fields.size() == kCommon + 3) value_at = number(d.fields[kCommon + 2]);
      Bytes value = der_sig;
      if (is_ecdsa(d.algorithm)) {  // XML-DSig wants r||s, each as wide as the curve's order
        const int bits = EVP_PKEY_get_bits(X509_get0_pubkey(known->cert.get()));
        value = ecdsa_der_to_raw(der_sig, static_cast<std::size_t>((bits + 7) / 8));
      }
      out.document = detail::xml_embed(d.fields[kCommon], out.id, value, tsa, value_at);
      break;
    }
    case PreparedFormat::Pdf: {
      need(5);
      out.document = std::move(d.fields[kCommon]);
      const std::size_t at = number(d.fields[kCommon + 1]);
      const std::size_t reserve = number(d.fields[kCommon + 2]);
      if (at + 2 + 2 * reserve > out.document.size() || out.document[at] != '<' ||
          out.document[at + 1 + 2 * reserve] != '>')
        throw Error(ErrorCode::PreparedStateInvalid, "malformed");
      // The document is not in the MAC; its byte ranges must hash to the messageDigest the MAC
      // covers, and /Contents must still be the placeholder.
      const std::vector<Bytes> recipe = split(d.fields[kCommon + 3]);
      const Bytes& doc = out.document;
      EvpMdCtxPtr md(EVP_MD_CTX_new());
      Bytes ranges(EVP_MAX_MD_SIZE);
      unsigned int rlen = 0;
      const std::size_t after = at + 2 + 2 * reserve;
      if (!md || EVP_DigestInit_ex(md.get(), detail::evp_md(hash_of(d.algorithm)), nullptr) != 1 ||
          EVP_DigestUpdate(md.get(), doc.data(), at) != 1 ||
          EVP_DigestUpdate(md.get(), doc.data() + after, doc.size() - after) != 1 ||
          EVP_DigestFinal_ex(md.get(), ranges.data(), &rlen) != 1) {
        throw Error(ErrorCode::Internal, "digest: " + openssl_error());
      }
      ranges.resize(rlen);
      // All zeros: the first is '0' and each equals the next (one memcmp, not a loop per byte).
      const bool placeholder =
          reserve == 0 ||
          (doc[at + 1] == '0' &&
           std::memcmp(doc.data() + at + 1, doc.data() + at + 2, 2 * reserve - 1) == 0);
      if (recipe.empty() || recipe[0] != ranges || !placeholder) {
        throw Error(ErrorCode::PreparedStateInvalid,
                    "the prepared PDF was changed (its byte ranges or /Contents)");
      }
      detail::write_contents(reinterpret_cast<char*>(out.document.data() + at), reserve,
                             pdf_cms(*known, d.algorithm, recipe, d.fields[kCommon + 3],
                                     d.fields[kDigest], der_sig, tsa));
      out.id = as_string(d.fields[kCommon + 4]);
      break;
    }
  }
  return out;
}

}  // namespace kyso::formats
