#include "cms_longterm.hpp"

#include <openssl/cms.h>
#include <openssl/objects.h>

#include <algorithm>

#include "der.hpp"
#include "tsa_digest.hpp"

namespace kyso::formats::detail {
namespace {

using Span = std::span<const std::uint8_t>;

[[noreturn]] void malformed() {
  throw Error(ErrorCode::DocumentInvalid, "the CMS is not DER-encoded SignedData");
}

std::vector<Tlv> children(Span d, const Tlv& parent) {
  std::vector<Tlv> out;
  for (std::size_t at = parent.start + parent.header; at < parent.end();) {
    out.push_back(read_tlv(d, at, parent.end()));
    at = out.back().end();
  }
  return out;
}

Bytes cat(std::initializer_list<Span> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// The pieces of a ContentInfo/SignedData.
struct SignedData {
  Tlv content_info, explicit0, sd;
  std::vector<Tlv> fields;  // SignedData's children
  int certs = -1;           // index in fields of [0] certificates
  int crls = -1;            // of [1] crls
  int signer_infos = -1;
};

SignedData parse(Span d) {
  SignedData s;
  s.content_info = read_tlv(d, 0, d.size());
  const auto ci = children(d, s.content_info);
  if (s.content_info.tag != 0x30 || ci.size() != 2 || ci[1].tag != 0xA0) malformed();
  s.explicit0 = ci[1];
  const auto inner = children(d, s.explicit0);
  if (inner.size() != 1 || inner[0].tag != 0x30) malformed();
  s.sd = inner[0];
  s.fields = children(d, s.sd);
  for (std::size_t i = 0; i < s.fields.size(); ++i) {
    if (s.fields[i].tag == 0xA0) s.certs = static_cast<int>(i);
    if (s.fields[i].tag == 0xA1) s.crls = static_cast<int>(i);
    if (s.fields[i].tag == 0x31 && i >= 3) s.signer_infos = static_cast<int>(i);
  }
  if (s.fields.size() < 4 || s.signer_infos < 0) malformed();
  return s;
}

constexpr std::array<std::uint8_t, 10> kOcspFormatOid{
    0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x10, 0x02};  // 1.3.6.1.5.5.7.16.2
constexpr std::array<std::uint8_t, 8> kAtsV3Oid{0x06, 0x06, 0x04, 0x00,
                                                0x8D, 0x45, 0x02, 0x04};  // 0.4.0.1733.2.4
constexpr std::array<std::uint8_t, 8> kHashIndexOid{0x06, 0x06, 0x04, 0x00,
                                                    0x8D, 0x45, 0x02, 0x05};  // 0.4.0.1733.2.5
// id-aa-signatureTimeStampToken, 1.2.840.113549.1.9.16.2.14
constexpr std::array<std::uint8_t, 13> kSigTsOid{0x06, 0x0B, 0x2A, 0x86, 0x48, 0x86, 0xF7,
                                                 0x0D, 0x01, 0x09, 0x10, 0x02, 0x0E};

Span ats_v3_oid() {
  return kAtsV3Oid;
}

// SignedData rebuilt with more certificates / revocation choices, or a signer's unsigned
// attributes replaced; every other byte is copied as it was.
Bytes rebuild(Span d, const SignedData& s, const std::vector<Bytes>& more_certs,
              const std::vector<Bytes>& more_crls, bool version5, std::optional<std::size_t> signer,
              const Bytes& signer_der) {
  Bytes body;
  auto put = [&](Span p) { body.insert(body.end(), p.begin(), p.end()); };
  auto list = [&](std::uint8_t tag, int index, const std::vector<Bytes>& more) {
    if (index < 0 && more.empty()) return;
    Bytes inner;
    if (index >= 0) {
      const Span v = s.fields[static_cast<std::size_t>(index)].value(d);
      inner.assign(v.begin(), v.end());
    }
    for (const auto& m : more) inner.insert(inner.end(), m.begin(), m.end());
    put(der_wrap(tag, inner));
  };
  for (std::size_t i = 0; i < s.fields.size(); ++i) {
    const int ii = static_cast<int>(i);
    if (ii == s.certs || ii == s.crls) continue;
    if (ii == s.signer_infos) {
      list(0xA0, s.certs, more_certs);
      list(0xA1, s.crls, more_crls);
      if (!signer) {
        put(s.fields[i].all(d));
        continue;
      }
      Bytes infos;
      const auto sis = children(d, s.fields[i]);
      for (std::size_t k = 0; k < sis.size(); ++k) {
        const Span one = k == *signer ? Span(signer_der) : sis[k].all(d);
        infos.insert(infos.end(), one.begin(), one.end());
      }
      put(der_wrap(0x31, infos));
      continue;
    }
    if (i == 0 && version5) {
      put(std::array<std::uint8_t, 3>{0x02, 0x01, 0x05});
      continue;
    }
    put(s.fields[i].all(d));
  }
  const Bytes oid(d.begin() + static_cast<long>(s.content_info.start + s.content_info.header),
                  d.begin() + static_cast<long>(s.explicit0.start));
  return der_wrap(0x30, cat({oid, der_wrap(0xA0, der_wrap(0x30, body))}));
}

const Tlv& signer_info(Span d, const SignedData& s, std::size_t index, std::vector<Tlv>& keep) {
  keep = children(d, s.fields[static_cast<std::size_t>(s.signer_infos)]);
  if (index >= keep.size()) throw Error(ErrorCode::BadRequest, "no such signer in the CMS");
  return keep[index];
}

Bytes hash(HashAlgorithm h, Span data) {
  return digest(openssl_md_name(h), data);
}

// ATSHashIndexV3 of signer `si` as the SignedData is now.
Bytes hash_index(Span d, const SignedData& s, const Tlv& si, HashAlgorithm h) {
  auto octets = [&](const std::vector<Bytes>& hashes) {
    Bytes inner;
    for (const auto& x : hashes) {
      const Bytes o = der_wrap(0x04, x);
      inner.insert(inner.end(), o.begin(), o.end());
    }
    return der_wrap(0x30, inner);
  };
  std::vector<Bytes> certs;
  std::vector<Bytes> crls;
  std::vector<Bytes> attrs;
  if (s.certs >= 0)
    for (const auto& c : children(d, s.fields[static_cast<std::size_t>(s.certs)]))
      certs.push_back(hash(h, c.all(d)));
  if (s.crls >= 0)
    for (const auto& c : children(d, s.fields[static_cast<std::size_t>(s.crls)]))
      crls.push_back(hash(h, c.all(d)));
  for (const auto& f : children(d, si)) {
    if (f.tag != 0xA1) continue;
    for (const auto& attr : children(d, f)) {
      const auto parts = children(d, attr);
      if (parts.size() != 2) malformed();
      for (const auto& v : children(d, parts[1]))
        attrs.push_back(hash(h, cat({parts[0].all(d), v.all(d)})));
    }
  }
  Bytes body;
  if (h != HashAlgorithm::Sha256) {
    X509_ALGOR* a = X509_ALGOR_new();
    X509_ALGOR_set_md(a, evp_md(h));
    const Bytes alg = i2d_bytes(a, i2d_X509_ALGOR);
    X509_ALGOR_free(a);
    body = alg;
  }
  for (const auto& part : {octets(certs), octets(crls), octets(attrs)})
    body.insert(body.end(), part.begin(), part.end());
  return der_wrap(0x30, body);
}

// The message imprint's input minus the hash index, in order: eContentType, the content's hash,
// and the signer's version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm, signature.
Bytes imprint_prefix(Span d, const SignedData& s, const Tlv& si, HashAlgorithm h,
                     const ContentHash& content) {
  const auto eci = children(d, s.fields[2]);
  if (eci.empty()) malformed();
  Bytes out(eci[0].all(d).begin(), eci[0].all(d).end());
  const Bytes c = content(h);
  out.insert(out.end(), c.begin(), c.end());
  for (const auto& f : children(d, si)) {
    if (f.tag == 0xA1) continue;
    const Span p = f.all(d);
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// A signer's SignerInfo with one more unsigned attribute (appended to [1], made when missing).
Bytes with_unsigned_attribute(Span d, const Tlv& si, const Bytes& attribute) {
  Bytes body;
  bool added = false;
  for (const auto& f : children(d, si)) {
    if (f.tag == 0xA1) {
      const Span v = f.value(d);
      Bytes inner(v.begin(), v.end());
      inner.insert(inner.end(), attribute.begin(), attribute.end());
      const Bytes a = der_wrap(0xA1, inner);
      body.insert(body.end(), a.begin(), a.end());
      added = true;
    } else {
      const Span p = f.all(d);
      body.insert(body.end(), p.begin(), p.end());
    }
  }
  if (!added) {
    const Bytes a = der_wrap(0xA1, attribute);
    body.insert(body.end(), a.begin(), a.end());
  }
  return der_wrap(0x30, body);
}

std::optional<HashAlgorithm> token_hash(Span token) {
  const unsigned char* p = token.data();
  std::unique_ptr<PKCS7, FnDeleter<PKCS7_free>> p7(
      d2i_PKCS7(nullptr, &p, static_cast<long>(token.size())));
  std::unique_ptr<TS_TST_INFO, FnDeleter<TS_TST_INFO_free>> info(p7 ? PKCS7_to_TS_TST_INFO(p7.get())
                                                                    : nullptr);
  if (!info) return std::nullopt;
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr,
                  TS_MSG_IMPRINT_get_algo(TS_TST_INFO_get_msg_imprint(info.get())));
  switch (OBJ_obj2nid(oid)) {
    case NID_sha256:
      return HashAlgorithm::Sha256;
    case NID_sha384:
      return HashAlgorithm::Sha384;
    case NID_sha512:
      return HashAlgorithm::Sha512;
    default:
      return std::nullopt;
  }
}

}  // namespace

Bytes cms_append_validation_data(Span der, const ValidationData& add) {
  const SignedData s = parse(der);
  std::vector<Bytes> crls = add.crls;
  for (const auto& o : add.ocsps) {
    crls.push_back(der_wrap(0xA1, cat({Span(kOcspFormatOid), Span(o)})));
  }
  return rebuild(der, s, add.certs, crls, !add.ocsps.empty(), std::nullopt, {});
}

ValidationData cms_validation_data(Span der) {
  ValidationData v;
  const SignedData s = parse(der);
  if (s.certs >= 0)
    for (const auto& c : children(der, s.fields[static_cast<std::size_t>(s.certs)]))
      if (c.tag == 0x30) v.certs.emplace_back(c.all(der).begin(), c.all(der).end());
  if (s.crls >= 0) {
    for (const auto& c : children(der, s.fields[static_cast<std::size_t>(s.crls)])) {
      if (c.tag == 0x30) {
        v.crls.emplace_back(c.all(der).begin(), c.all(der).end());
      } else if (c.tag == 0xA1) {
        const auto parts = children(der, c);
        const Span oid = parts.empty() ? Span() : parts[0].all(der);
        if (parts.size() == 2 && std::ranges::equal(oid, kOcspFormatOid))
          v.ocsps.emplace_back(parts[1].all(der).begin(), parts[1].all(der).end());
      }
    }
  }
  return v;
}

Bytes cms_add_archive_timestamp(Span der, std::size_t index, const ContentHash& content,
                                const TsaConfig& tsa, Bytes* token_out) {
  const SignedData s = parse(der);
  std::vector<Tlv> keep;
  const Tlv& si = signer_info(der, s, index, keep);
  const Bytes index_der = hash_index(der, s, si, tsa.hash);
  const Bytes input = cat({Span(imprint_prefix(der, s, si, tsa.hash, content)), Span(index_der)});
  Bytes token = request_timestamp_for_digest(tsa, hash(tsa.hash, input)).token;
  // The hash index rides in the token's own unsigned attributes (the TSA did not sign them).
  {
    const SignedData ts = parse(token);
    std::vector<Tlv> tkeep;
    const Tlv& tsi = signer_info(token, ts, 0, tkeep);
    const Bytes attr = der_wrap(0x30, cat({Span(kHashIndexOid), Span(der_wrap(0x31, index_der))}));
    token = rebuild(token, ts, {}, {}, false, 0, with_unsigned_attribute(token, tsi, attr));
  }
  if (token_out != nullptr) *token_out = token;
  const Bytes attr = der_wrap(0x30, cat({ats_v3_oid(), Span(der_wrap(0x31, token))}));
  return rebuild(der, s, {}, {}, false, index, with_unsigned_attribute(der, si, attr));
}

std::vector<Bytes> cms_archive_timestamps(Span der, std::size_t index, const ContentHash& content) {
  std::vector<Bytes> out;
  const SignedData s = parse(der);
  std::vector<Tlv> keep;
  const Tlv& si = signer_info(der, s, index, keep);
  // Everything the SignedData holds now, by hash, for checking each hash index against.
  for (const auto& f : children(der, si)) {
    if (f.tag != 0xA1) continue;
    for (const auto& attr : children(der, f)) {
      const auto parts = children(der, attr);
      if (parts.size() != 2 || !std::ranges::equal(parts[0].all(der), ats_v3_oid())) continue;
      for (const auto& v : children(der, parts[1])) {
        const Bytes token(v.all(der).begin(), v.all(der).end());
        try {
          const auto h = token_hash(token);
          if (!h) continue;
          // The hash index from the token's unsigned attributes.
          const SignedData ts = parse(token);
          std::vector<Tlv> tkeep;
          const Tlv& tsi = signer_info(token, ts, 0, tkeep);
          std::optional<Bytes> index_der;
          for (const auto& tf : children(token, tsi)) {
            if (tf.tag != 0xA1) continue;
            for (const auto& ta : children(token, tf)) {
              const auto tp = children(token, ta);
              if (tp.size() == 2 && std::ranges::equal(tp[0].all(token), kHashIndexOid)) {
                const auto vals = children(token, tp[1]);
                if (vals.size() == 1)
                  index_der = Bytes(vals[0].all(token).begin(), vals[0].all(token).end());
              }
            }
          }
          if (!index_der) continue;
          // Every hash it lists must still be there: certificates, revocation data and unsigned
          // attributes (a removed or altered one is missing from the current index).
          const Bytes now = hash_index(der, s, si, *h);
          auto hashes = [](Span d2) {
            std::vector<Bytes> all;
            const Tlv top = read_tlv(d2, 0, d2.size());
            for (const auto& part : children(d2, top)) {
              if (part.tag != 0x30) continue;
              for (const auto& o : children(d2, part))
                all.emplace_back(o.value(d2).begin(), o.value(d2).end());
            }
            return all;
          };
          const auto listed = hashes(*index_der);
          const auto present = hashes(now);
          const bool intact = std::ranges::all_of(listed, [&](const Bytes& x) {
            return std::ranges::find(present, x) != present.end();
          });
          if (!intact) continue;
          const Bytes input =
              cat({Span(imprint_prefix(der, s, si, *h, content)), Span(*index_der)});
          std::string why;
          if (verify_timestamp_digest(
                  token, [&](HashAlgorithm) { return hash(*h, input); }, {}, why))
            out.push_back(token);
        } catch (const Error&) {
          // a damaged archive timestamp proves nothing
        }
      }
    }
  }
  return out;
}

std::size_t cms_signer_count(Span der) {
  const SignedData s = parse(der);
  return children(der, s.fields[static_cast<std::size_t>(s.signer_infos)]).size();
}

Bytes cms_add_signature_timestamp(Span der, std::size_t index, const TsaConfig& tsa) {
  const SignedData s = parse(der);
  std::vector<Tlv> keep;
  const Tlv& si = signer_info(der, s, index, keep);
  const auto fields = children(der, si);
  const auto sig = std::ranges::find_if(fields, [](const Tlv& f) { return f.tag == 0x04; });
  if (sig == fields.end()) malformed();
  const Bytes token = request_timestamp(tsa, sig->value(der)).token;
  const Bytes attr = der_wrap(0x30, cat({Span(kSigTsOid), Span(der_wrap(0x31, token))}));
  return rebuild(der, s, {}, {}, false, index, with_unsigned_attribute(der, si, attr));
}

}  // namespace kyso::formats::detail
