// Validation data for B-LT/B-LTA: collected online while the responders answer, checked
// offline at the time a timestamp proves.

#include "kyso/formats/longterm.hpp"
#include "kyso/core/certificate.hpp"

#include <openssl/cms.h>
#include <openssl/ocsp.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "der.hpp"
#include "revocation.hpp"

namespace kyso::formats {
namespace {

using detail::check;
using detail::CrlPtr;
using detail::X509StackPtr;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FnDeleter<X509_STORE_CTX_free>>;
using OcspRespPtr = std::unique_ptr<OCSP_RESPONSE, FnDeleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, FnDeleter<OCSP_BASICRESP_free>>;
using OcspIdPtr = std::unique_ptr<OCSP_CERTID, FnDeleter<OCSP_CERTID_free>>;
using Clock = std::chrono::system_clock;

Clock::time_point to_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return utc_time_point(tm);
}

std::string name_of(X509* cert) {
  const CertificateInfo info = parse_certificate(x509_to_der(cert));
  return "CN=" + info.common_name;
}

bool no_check(X509* cert) {
  return X509_get_ext_by_NID(cert, NID_id_pkix_OCSP_noCheck, -1) >= 0;
}

bool self_issued_anchor(X509* cert) {
  return X509_check_issued(cert, cert) == X509_V_OK;
}

X509StackPtr stack_of(const std::vector<Bytes>& ders) {
  X509StackPtr s(sk_X509_new_null());
  check(s != nullptr, "sk_X509_new_null");
  for (const auto& d : ders) {
    try {
      sk_X509_push(s.get(), x509_from_der(d).release());
    } catch (const Error&) {
      // an unreadable certificate in a document is simply not used
    }
  }
  return s;
}

// The chain from `leaf` to an anchor, leaf first; empty with `why` set when none builds.
std::vector<X509Ptr> build_chain(X509* leaf, X509_STORE* store, STACK_OF(X509) * untrusted,
                                 std::optional<Clock::time_point> at, std::string& why) {
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  check(ctx && X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted) == 1, "X509_STORE_CTX");
  if (at) {
    X509_STORE_CTX_set_time(ctx.get(), 0, Clock::to_time_t(*at));
  } else {
    X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  }
  std::vector<X509Ptr> out;
  if (X509_verify_cert(ctx.get()) != 1) {
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    why = std::string(X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))) +
          (depth > 0 ? " (certificate " + std::to_string(depth) + " in the chain)" : "");
    openssl_error();
    return out;
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* c = sk_X509_value(chain, i);
    X509_up_ref(c);
    out.emplace_back(c);
  }
  return out;
}

void add_unique(std::vector<Bytes>& list, Bytes item) {
  if (std::ranges::find(list, item) == list.end()) list.push_back(std::move(item));
}

void collect_chain(X509* leaf, X509_STORE* store, STACK_OF(X509) * untrusted,
                   const TrustConfig& trust, ValidationData& into, int depth) {
  std::string why;
  const std::vector<X509Ptr> chain = build_chain(leaf, store, untrusted, std::nullopt, why);
  if (chain.empty()) {
    throw Error(ErrorCode::CertUntrusted, name_of(leaf) + ": no chain to a trust anchor: " + why);
  }
  for (const auto& c : chain) add_unique(into.certs, x509_to_der(c.get()));
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    X509* cert = chain[i].get();
    X509* issuer = chain[i + 1].get();
    if (no_check(cert)) continue;
    const CertificateInfo info = parse_certificate(x509_to_der(cert));
    const std::vector<std::string> urls =
        trust.ocsp_url.empty() ? info.ocsp_urls : std::vector{trust.ocsp_url};
    bool done = false;
    for (const auto& url : urls) {
      const auto answer = detail::fetch_ocsp(url, cert, issuer, untrusted, store, trust.timeout);
      if (!answer || answer->status == V_OCSP_CERTSTATUS_UNKNOWN) continue;
      if (answer->status == V_OCSP_CERTSTATUS_REVOKED) {
        throw Error(ErrorCode::CertRevoked, name_of(cert) + " is revoked (OCSP)");
      }
      add_unique(into.ocsps, answer->der);
      // The responder's own certificates, and its revocation data unless it needs none.
      const unsigned char* p = answer->der.data();
      OcspRespPtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(answer->der.size())));
      OcspBasicPtr basic(resp ? OCSP_response_get1_basic(resp.get()) : nullptr);
      const STACK_OF(X509)* rcerts = basic ? OCSP_resp_get0_certs(basic.get()) : nullptr;
      for (int k = 0; k < sk_X509_num(rcerts); ++k) {
        X509* r = sk_X509_value(rcerts, k);
        add_unique(into.certs, x509_to_der(r));
        if (depth < 4 && !no_check(r) && X509_cmp(r, issuer) != 0) {
          collect_chain(r, store, untrusted, trust, into, depth + 1);
        }
      }
      done = true;
      break;
    }
    if (done) continue;
    std::vector<std::string> sources = trust.crl_files;
    sources.insert(sources.end(), info.crl_urls.begin(), info.crl_urls.end());
    for (const auto& src : sources) {
      const CrlPtr crl = detail::load_crl(detail::fetch_url(src, trust.timeout));
      if (!crl ||
          X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0 ||
          X509_CRL_verify(crl.get(), X509_get0_pubkey(issuer)) != 1) {
        openssl_error();
        continue;
      }
      X509_REVOKED* rev = nullptr;
      if (X509_CRL_get0_by_cert(crl.get(), &rev, cert) == 1) {
        throw Error(ErrorCode::CertRevoked, name_of(cert) + " is revoked (CRL)");
      }
      add_unique(into.crls, detail::i2d_bytes(crl.get(), i2d_X509_CRL));
      done = true;
      break;
    }
    if (!done) {
      throw Error(ErrorCode::CertRevocationUnknown,
                  name_of(cert) + ": neither OCSP nor a CRL could be fetched for the archive");
    }
  }
}

std::string iso(Clock::time_point t) {
  return to_iso8601(t);
}

// Revocation data in `data` that says `cert` (issued by `issuer`) was not revoked at `at`;
// returns the evidence, or nullopt with `why` extended (and `revoked` set when the data says the
// certificate was revoked by then).
std::optional<std::string> find_revocation(X509* cert, X509* issuer, const ValidationData& data,
                                           const std::vector<std::string>& anchors,
                                           STACK_OF(X509) * untrusted, Clock::time_point at,
                                           std::string& why, bool& revoked) {
  const std::time_t at_t = Clock::to_time_t(at);
  for (const auto& der : data.ocsps) {
    const unsigned char* p = der.data();
    OcspRespPtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
    OcspBasicPtr basic(resp && OCSP_response_status(resp.get()) == OCSP_RESPONSE_STATUS_SUCCESSFUL
                           ? OCSP_response_get1_basic(resp.get())
                           : nullptr);
    if (!basic) {
      why += "; an OCSP response in the document cannot be read (damaged)";
      openssl_error();
      continue;
    }
    int status = -1;
    int reason = 0;
    ASN1_GENERALIZEDTIME* revoked_at = nullptr;
    ASN1_GENERALIZEDTIME* this_update = nullptr;
    ASN1_GENERALIZEDTIME* next_update = nullptr;
    bool found = false;
    for (const EVP_MD* md : {EVP_sha1(), EVP_sha256()}) {
      OcspIdPtr id(OCSP_cert_to_id(md, cert, issuer));
      if (id && OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at,
                                      &this_update, &next_update) == 1) {
        found = true;
        break;
      }
    }
    openssl_error();
    if (!found) continue;
    // The response must verify as of when it was produced, with its responder's chain.
    const Clock::time_point produced = to_time(OCSP_resp_get0_produced_at(basic.get()));
    detail::X509StorePtr store = detail::make_store(anchors);
    X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), Clock::to_time_t(produced));
    if (OCSP_basic_verify(basic.get(), untrusted, store.get(), 0) != 1) {
      why += "; an OCSP response for " + name_of(cert) +
             " in the document does not verify: " + openssl_error();
      continue;
    }
    const Clock::time_point tu = to_time(this_update);
    const bool after = tu >= at;
    const bool current = next_update != nullptr && tu <= at && at <= to_time(next_update);
    if (!after && !current) {
      why += "; the OCSP response for " + name_of(cert) + " (" + iso(tu) + ") predates " + iso(at);
      continue;
    }
    if (status == V_OCSP_CERTSTATUS_REVOKED && to_time(revoked_at) <= at) {
      why += "; " + name_of(cert) + " was revoked on " + iso(to_time(revoked_at));
      revoked = true;
      return std::nullopt;
    }
    if (status == V_OCSP_CERTSTATUS_UNKNOWN) continue;
    return name_of(cert) + ": OCSP " +
           (status == V_OCSP_CERTSTATUS_GOOD
                ? std::string("good")
                : "revoked only later, on " + iso(to_time(revoked_at))) +
           " (produced " + iso(produced) + ")";
  }
  for (const auto& der : data.crls) {
    const CrlPtr crl = detail::load_crl(der);
    if (!crl || X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0)
      continue;
    if (X509_CRL_verify(crl.get(), X509_get0_pubkey(issuer)) != 1) {
      why += "; a CRL from " + name_of(issuer) + " in the document does not verify";
      openssl_error();
      continue;
    }
    const Clock::time_point tu = to_time(X509_CRL_get0_lastUpdate(crl.get()));
    const ASN1_TIME* nu = X509_CRL_get0_nextUpdate(crl.get());
    const bool after = tu >= at;
    const bool current =
        nu != nullptr && tu <= at && X509_cmp_time(nu, const_cast<std::time_t*>(&at_t)) >= 0;
    if (!after && !current) continue;
    X509_REVOKED* rev = nullptr;
    if (X509_CRL_get0_by_cert(crl.get(), &rev, cert) == 1 &&
        to_time(X509_REVOKED_get0_revocationDate(rev)) <= at) {
      why += "; " + name_of(cert) + " was revoked on " +
             iso(to_time(X509_REVOKED_get0_revocationDate(rev))) + " (CRL)";
      revoked = true;
      return std::nullopt;
    }
    return name_of(cert) + ": not on the CRL of " + iso(tu);
  }
  return std::nullopt;
}

}  // namespace

std::size_t ValidationData::merge(const ValidationData& other) {
  const std::size_t before = certs.size() + ocsps.size() + crls.size();
  for (const auto& c : other.certs) add_unique(certs, c);
  for (const auto& o : other.ocsps) add_unique(ocsps, o);
  for (const auto& c : other.crls) add_unique(crls, c);
  return certs.size() + ocsps.size() + crls.size() - before;
}

void collect_validation_data(const Bytes& leaf, const std::vector<Bytes>& extra,
                             const TrustConfig& trust, ValidationData& into) {
  if (trust.anchors.empty()) {
    throw Error(ErrorCode::CertUntrusted, "no trust anchor configured for the validation data");
  }
  X509Ptr cert = x509_from_der(leaf);
  detail::X509StorePtr store = detail::make_store(trust.anchors);
  std::vector<Bytes> all = extra;
  all.insert(all.end(), into.certs.begin(), into.certs.end());
  X509StackPtr untrusted = stack_of(all);
  for (const auto& file : trust.intermediates) {
    for (auto& x : x509_read_file(file)) sk_X509_push(untrusted.get(), x.release());
  }
  collect_chain(cert.get(), store.get(), untrusted.get(), trust, into, 0);
}

OfflineCheck check_offline(const Bytes& leaf, const ValidationData& data,
                           const std::vector<std::string>& anchors, Clock::time_point at) {
  OfflineCheck r;
  if (anchors.empty()) {
    r.problem = "no trust anchor configured";
    return r;
  }
  X509Ptr cert = x509_from_der(leaf);
  detail::X509StorePtr store = detail::make_store(anchors);
  X509StackPtr untrusted = stack_of(data.certs);
  std::string why;
  const std::vector<X509Ptr> chain = build_chain(cert.get(), store.get(), untrusted.get(), at, why);
  if (chain.empty()) {
    r.problem = name_of(cert.get()) + ": no valid chain on " + iso(at) + ": " + why;
    // The leaf's own dates say more than "no chain" (ETSI's OUT_OF_BOUNDS / EXPIRED).
    const std::time_t t = Clock::to_time_t(at);
    if (X509_cmp_time(X509_get0_notAfter(cert.get()), const_cast<std::time_t*>(&t)) < 0) {
      r.code = ErrorCode::CertExpired;
    } else if (X509_cmp_time(X509_get0_notBefore(cert.get()), const_cast<std::time_t*>(&t)) > 0) {
      r.code = ErrorCode::CertNotYetValid;
    }
    return r;
  }
  r.chain_not_after = Clock::time_point::max();
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
    X509* c = chain[i].get();
    r.chain_not_after = std::min(r.chain_not_after, to_time(X509_get0_notAfter(c)));
    if (no_check(c)) {
      r.evidence.push_back(name_of(c) + ": OCSP responder, no revocation check needed");
      continue;
    }
    std::string miss;
    bool revoked = false;
    const auto ev =
        find_revocation(c, chain[i + 1].get(), data, anchors, untrusted.get(), at, miss, revoked);
    if (!ev) {
      r.code = revoked ? ErrorCode::CertRevoked : ErrorCode::CertRevocationUnknown;
      r.problem =
          "no revocation data in the document shows " + name_of(c) + " valid on " + iso(at) + miss;
      return r;
    }
    r.evidence.push_back(*ev);
  }
  if (chain.size() == 1 || !self_issued_anchor(chain.back().get())) {
    r.chain_not_after =
        std::min(r.chain_not_after, to_time(X509_get0_notAfter(chain.back().get())));
  }
  r.ok = true;
  return r;
}

TimestampFacts timestamp_facts(std::span<const std::uint8_t> token) {
  const unsigned char* p = token.data();
  detail::CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(token.size())));
  if (!cms) {
    openssl_error();
    throw Error(ErrorCode::TsaError, "not a timestamp token");
  }
  TimestampFacts f;
  f.time = timestamp_time(token);
  X509StackPtr certs(CMS_get1_certs(cms.get()));
  STACK_OF(CMS_SignerInfo)* sis = CMS_get0_SignerInfos(cms.get());
  CMS_SignerInfo* si = sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : nullptr;
  for (int i = 0; certs && i < sk_X509_num(certs.get()); ++i) {
    X509* c = sk_X509_value(certs.get(), i);
    f.certs.push_back(x509_to_der(c));
    if (si != nullptr && CMS_SignerInfo_cert_cmp(si, c) == 0) f.tsa_cert = f.certs.back();
  }
  openssl_error();
  if (f.tsa_cert.empty())
    throw Error(ErrorCode::TsaError, "the timestamp carries no TSA certificate");
  return f;
}

}  // namespace kyso::formats

namespace kyso::formats {

std::vector<ChainToArchive> chains_in_cms(std::span<const std::uint8_t> der) {
  const unsigned char* p = der.data();
  detail::CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms || OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    openssl_error();
    throw Error(ErrorCode::DocumentInvalid, "not a CMS SignedData");
  }
  std::vector<Bytes> certs;
  {
    detail::X509StackPtr all(CMS_get1_certs(cms.get()));
    for (int i = 0; all && i < sk_X509_num(all.get()); ++i)
      certs.push_back(x509_to_der(sk_X509_value(all.get(), i)));
  }
  std::vector<ChainToArchive> out;
  STACK_OF(CMS_SignerInfo)* sis = CMS_get0_SignerInfos(cms.get());
  for (int i = 0; i < sk_CMS_SignerInfo_num(sis); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, i);
    for (const auto& c : certs) {
      X509Ptr x = x509_from_der(c);
      if (CMS_SignerInfo_cert_cmp(si, x.get()) == 0) out.push_back({c, certs});
    }
    for (int at = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1); at >= 0;
         at = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, at)) {
      const ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(CMS_unsigned_get_attr(si, at), 0);
      if (t == nullptr || t->type != V_ASN1_SEQUENCE) continue;
      try {
        TimestampFacts f = timestamp_facts(
            {t->value.sequence->data, static_cast<std::size_t>(t->value.sequence->length)});
        out.push_back({std::move(f.tsa_cert), std::move(f.certs)});
      } catch (const Error&) {
        // an unreadable timestamp is reported by verification, not archived
      }
    }
  }
  openssl_error();
  return out;
}

}  // namespace kyso::formats
