#include "kyso/formats/verify.hpp"
#include "kyso/core/certificate.hpp"

#include <openssl/cms.h>
#include <openssl/ess.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cms_longterm.hpp"
#include "der.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/tsa.hpp"
#include "verify_common.hpp"

namespace kyso::formats {

std::string_view to_string(CheckStatus s) noexcept {
  switch (s) {
    case CheckStatus::Ok:
      return "ok";
    case CheckStatus::Failed:
      return "failed";
    case CheckStatus::Unknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view to_string(PdfLaterChanges::Kind k) noexcept {
  switch (k) {
    case PdfLaterChanges::Kind::None:
      return "none";
    case PdfLaterChanges::Kind::SignaturesOrFormFields:
      return "signatures-or-form-fields";
    case PdfLaterChanges::Kind::ContentChanged:
      return "content-changed";
  }
  return "content-changed";
}

std::string_view to_string(BaselineLevel l) noexcept {
  switch (l) {
    case BaselineLevel::B:
      return "B-B";
    case BaselineLevel::T:
      return "B-T";
    case BaselineLevel::LT:
      return "B-LT";
    case BaselineLevel::LTA:
      return "B-LTA";
  }
  return "B-B";
}

std::string_view to_string(IntegrityFailure f) noexcept {
  switch (f) {
    case IntegrityFailure::None:
      return "none";
    case IntegrityFailure::Format:
      return "format";
    case IntegrityFailure::Digest:
      return "digest";
    case IntegrityFailure::SignatureValue:
      return "signature-value";
  }
  return "format";
}

bool VerifyReport::ok() const noexcept {
  if (signatures.empty()) return false;
  for (const auto& s : signatures) {
    if (!s.ok()) return false;
  }
  return true;
}

namespace detail {

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  const std::string str(s);
  int used = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) !=
      6) {
    return std::nullopt;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = utc_time_point(tm);
  std::string_view rest = s.substr(static_cast<std::size_t>(used));
  while (!rest.empty() && (rest.front() == '.' || (rest.front() >= '0' && rest.front() <= '9')))
    rest.remove_prefix(1);
  if (rest.size() >= 6 && (rest[0] == '+' || rest[0] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &oh, &om) == 2) {
      const auto off = std::chrono::hours(oh) + std::chrono::minutes(om);
      t = rest[0] == '+' ? t - off : t + off;
    }
  }
  return t;
}

void judge_certificate(SignatureReport& r, const Bytes& cert_der, const std::vector<Bytes>& extra,
                       const VerifyOptions& o) {
  try {
    r.signer = parse_certificate(cert_der);
  } catch (const Error& e) {
    r.chain = CheckStatus::Failed;
    r.chain_detail = e.detail();
    return;
  }
  r.role = guess_role(*r.signer);
  if (o.anchors.empty()) {
    r.chain = CheckStatus::Failed;
    r.chain_detail = "no trust anchor configured";
    r.revocation_detail = "not checked";
    return;
  }
  Credential cred;
  cred.cert = *r.signer;
  for (const auto& c : extra) {
    if (c != cert_der) cred.chain.push_back(c);
  }
  TrustConfig t;
  t.anchors = o.anchors;
  t.intermediates = o.intermediates;
  t.check_revocation = o.check_revocation;
  t.ocsp_url = o.ocsp_url;
  t.crl_files = o.crl_files;
  t.timeout = o.timeout;
  t.fetch_hosts = o.fetch_hosts;
  t.policy = CheckPolicy::Warn;
  CertificateChecker checker(t);
  const auto at = r.timestamp      ? *r.timestamp
                  : r.signing_time ? *r.signing_time
                                   : std::chrono::system_clock::now();
  const CertCheckResult res = checker.evaluate(cred, at);
  r.checked_at = at;
  r.chain = CheckStatus::Ok;
  r.revocation = o.check_revocation ? CheckStatus::Ok : CheckStatus::Unknown;
  r.revocation_detail = o.check_revocation ? res.revocation : "not checked";
  for (const auto& p : res.problems) {
    r.certificate_problems.push_back(p.code());
    switch (p.code()) {
      case ErrorCode::CertRevoked:
        r.revocation = CheckStatus::Failed;
        r.revocation_detail = p.detail();
        break;
      case ErrorCode::CertRevocationUnknown:
        r.revocation = CheckStatus::Unknown;
        r.revocation_detail = p.detail();
        break;
      default:
        r.chain = CheckStatus::Failed;
        r.chain_detail +=
            (r.chain_detail.empty() ? "" : "; ") + std::string(p.name()) + ": " + p.detail();
    }
  }
}

void read_signature_timestamp(SignatureReport& r, LongTermInputs& lt,
                              std::span<const std::uint8_t> token,
                              std::span<const std::uint8_t> data, const VerifyOptions& o) {
  std::string why;
  if (!verify_timestamp(token, data, {}, why)) {
    r.integrity_detail += (r.integrity_detail.empty() ? "" : "; ") + why;
    return;
  }
  lt.signature_timestamp = Bytes(token.begin(), token.end());
  r.timestamp = verify_timestamp(token, data, o.anchors, why);
  if (!r.timestamp) lt.signature_timestamp_problem = why;
}

void judge_long_term(SignatureReport& r, const Bytes& cert_der, const std::vector<Bytes>& extra,
                     const LongTermInputs& lt, const VerifyOptions& o) {
  LongTermReport& l = r.long_term;
  std::vector<Bytes> tokens;
  if (lt.signature_timestamp) tokens.push_back(*lt.signature_timestamp);
  tokens.insert(tokens.end(), lt.time_proofs.begin(), lt.time_proofs.end());
  const std::size_t first_archive = tokens.size();
  tokens.insert(tokens.end(), lt.archive_timestamps.begin(), lt.archive_timestamps.end());
  if (!lt.claims_long_term || tokens.empty()) {
    if (!lt.signature_timestamp_problem.empty()) {
      r.integrity_detail +=
          (r.integrity_detail.empty() ? "" : "; ") + lt.signature_timestamp_problem;
    }
    judge_certificate(r, cert_der, extra, o);
    l.level = r.timestamp ? BaselineLevel::T : BaselineLevel::B;
    return;
  }
  // Offline: only the document's data and the anchors, as of the times the timestamps prove.
  l.offline = true;
  auto fail = [&](std::string why, ErrorCode code = ErrorCode::CertUntrusted) {
    r.certificate_problems.push_back(code);
    if (code == ErrorCode::CertRevoked) {
      r.revocation = CheckStatus::Failed;
      r.revocation_detail = why;
    } else if (code == ErrorCode::CertRevocationUnknown) {
      r.revocation = CheckStatus::Unknown;
      r.revocation_detail = why;
    } else {
      r.chain = CheckStatus::Failed;
      r.chain_detail = why;
    }
    if (r.revocation_detail.empty()) r.revocation_detail = "not established";
    l.problem = std::move(why);
    l.level = r.timestamp ? BaselineLevel::T : BaselineLevel::B;
  };
  try {
    r.signer = parse_certificate(cert_der);
    r.role = guess_role(*r.signer);
  } catch (const Error& e) {
    fail(e.detail());
    return;
  }
  std::vector<TimestampFacts> facts;
  ValidationData data = lt.data;
  data.merge({extra, {}, {}});
  for (const auto& t : tokens) {
    try {
      facts.push_back(timestamp_facts(t));
    } catch (const Error& e) {
      fail("a timestamp in the document cannot be read: " + e.detail());
      return;
    }
    data.merge({facts.back().certs, {}, {}});
  }
  const auto by_time = [](const TimestampFacts& a, const TimestampFacts& b) {
    return a.time < b.time;
  };
  // The time proof: the signature's own timestamp, else the earliest one over it.
  std::vector<TimestampFacts> proofs(facts.begin(),
                                     facts.begin() + static_cast<long>(first_archive));
  std::vector<TimestampFacts> archives(facts.begin() + static_cast<long>(first_archive),
                                       facts.end());
  std::ranges::sort(proofs, by_time);
  std::ranges::sort(archives, by_time);
  if (lt.signature_timestamp) r.timestamp = proofs.front().time;
  std::vector<TimestampFacts> chain;  // the proof, then each archive timestamp renewing it
  if (!proofs.empty()) chain.push_back(proofs.front());
  chain.insert(chain.end(), archives.begin(), archives.end());
  const auto t0 = chain.front().time;
  l.validated_at = t0;
  for (const auto& a : archives) l.archive_timestamps.push_back(a.time);

  r.checked_at = t0;
  const OfflineCheck signer = check_offline(cert_der, data, o.anchors, t0);
  if (!signer.ok) {
    fail(signer.problem, signer.code);
    return;
  }
  r.chain = CheckStatus::Ok;
  r.chain_detail =
      "valid on " + to_iso8601(t0) + " (the time a timestamp proves), from the document's data";
  r.revocation = CheckStatus::Ok;
  r.revocation_detail.clear();
  for (const auto& e : signer.evidence)
    r.revocation_detail += (r.revocation_detail.empty() ? "" : "; ") + e;
  l.evidence = signer.evidence;
  // Each timestamp is validated as of its own time, and the next one must come before its
  // TSA's chain expires (the renewal); the last one holds until its chain expires.
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const OfflineCheck tsa = check_offline(chain[i].tsa_cert, data, o.anchors, chain[i].time);
    const std::string what =
        std::string(i == 0 ? "timestamp " : "archive timestamp ") + to_iso8601(chain[i].time);
    if (!tsa.ok) {
      fail(what + ": " + tsa.problem, tsa.code);
      return;
    }
    if (i + 1 < chain.size() && chain[i + 1].time > tsa.chain_not_after) {
      fail(what + ": its TSA certificate expired on " + to_iso8601(tsa.chain_not_after) +
           ", before the next timestamp (" + to_iso8601(chain[i + 1].time) + ") renewed it");
      return;
    }
    l.evidence.push_back(what + ", TSA valid then");
    l.evidence.insert(l.evidence.end(), tsa.evidence.begin(), tsa.evidence.end());
    l.covered_until = tsa.chain_not_after;
  }
  l.level = archives.empty() ? BaselineLevel::LT : BaselineLevel::LTA;
}

namespace {

// CAdES / PAdES: the signed ESS signing-certificate(-v2) attribute must name the certificate
// the signature verifies with (a certificate for the same key swapped in is caught here).
void check_ess_signing_certificate(SignatureReport& r, CMS_SignerInfo* si, X509* signer) {
  using EssV2Ptr = std::unique_ptr<ESS_SIGNING_CERT_V2, FnDeleter<ESS_SIGNING_CERT_V2_free>>;
  using EssV1Ptr = std::unique_ptr<ESS_SIGNING_CERT, FnDeleter<ESS_SIGNING_CERT_free>>;
  struct StackFree {
    void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_free(s); }
  };
  auto attr = [&](int nid) -> const ASN1_STRING* {
    const int at = CMS_signed_get_attr_by_NID(si, nid, -1);
    const ASN1_TYPE* t =
        at >= 0 ? X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, at), 0) : nullptr;
    return t != nullptr && t->type == V_ASN1_SEQUENCE ? t->value.sequence : nullptr;
  };
  const ASN1_STRING* v2 = attr(NID_id_smime_aa_signingCertificateV2);
  const ASN1_STRING* v1 = attr(NID_id_smime_aa_signingCertificate);
  if (v2 == nullptr && v1 == nullptr) {
    r.signing_certificate_detail = "no ESS signing-certificate attribute";
    return;
  }
  EssV2Ptr ess2;
  EssV1Ptr ess1;
  if (v2 != nullptr) {
    const unsigned char* p = ASN1_STRING_get0_data(v2);
    ess2.reset(d2i_ESS_SIGNING_CERT_V2(nullptr, &p, ASN1_STRING_length(v2)));
  } else {
    const unsigned char* p = ASN1_STRING_get0_data(v1);
    ess1.reset(d2i_ESS_SIGNING_CERT(nullptr, &p, ASN1_STRING_length(v1)));
  }
  std::unique_ptr<STACK_OF(X509), StackFree> chain(sk_X509_new_null());
  const bool ok = (ess1 || ess2) && chain && sk_X509_push(chain.get(), signer) > 0 &&
                  OSSL_ESS_check_signing_certs(ess1.get(), ess2.get(), chain.get(), 1) > 0;
  const std::string why = openssl_error();
  r.signing_certificate = ok ? CheckStatus::Ok : CheckStatus::Failed;
  r.signing_certificate_detail =
      ok ? (v2 != nullptr ? "ESS signing-certificate-v2" : "ESS signing-certificate")
         : "the ESS signing-certificate attribute does not name the signer's certificate" +
               (why.empty() ? std::string() : ": " + why);
}

}  // namespace

std::vector<SignatureReport> verify_cms(const Bytes& der, const ContentDigest* content,
                                        const VerifyOptions& o, const std::string& format,
                                        const LongTermInputs* document) {
  const unsigned char* p = der.data();
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms || OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    openssl_error();
    throw Error(ErrorCode::DocumentInvalid, "not a CMS SignedData");
  }
  std::vector<Bytes> certs_der;
  detail::X509StackPtr certs(CMS_get1_certs(cms.get()));
  for (int i = 0; certs && i < sk_X509_num(certs.get()); ++i)
    certs_der.push_back(x509_to_der(sk_X509_value(certs.get(), i)));
  CMS_set1_signers_certs(cms.get(), nullptr, 0);
  openssl_error();

  ContentDigest attached = [&](const EVP_MD* md) {
    ASN1_OCTET_STRING** pos = CMS_get0_content(cms.get());
    if (pos == nullptr || *pos == nullptr) return Bytes{};
    return digest(EVP_MD_get0_name(md), {ASN1_STRING_get0_data(*pos),
                                         static_cast<std::size_t>(ASN1_STRING_length(*pos))});
  };
  const ContentDigest& content_digest = content != nullptr ? *content : attached;

  std::vector<SignatureReport> out;
  STACK_OF(CMS_SignerInfo)* sis = CMS_get0_SignerInfos(cms.get());
  for (int i = 0; i < sk_CMS_SignerInfo_num(sis); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, i);
    SignatureReport r;
    r.id = "signer-" + std::to_string(i + 1);
    r.format = format;
    X509* signer = nullptr;
    X509_ALGOR* dig = nullptr;
    X509_ALGOR* sig = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, &signer, &dig, &sig);
    const ASN1_OBJECT* dig_oid = nullptr;
    const ASN1_OBJECT* sig_oid = nullptr;
    X509_ALGOR_get0(&dig_oid, nullptr, nullptr, dig);
    X509_ALGOR_get0(&sig_oid, nullptr, nullptr, sig);
    r.algorithm =
        std::string(OBJ_nid2sn(OBJ_obj2nid(sig_oid))) + "/" + OBJ_nid2sn(OBJ_obj2nid(dig_oid));

    // Claimed signing time (CAdES) — PAdES takes it from /M instead.
    const int ti = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    if (ti >= 0) {
      const ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, ti), 0);
      std::tm tm{};
      if (t != nullptr && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) &&
          ASN1_TIME_to_tm(t->value.utctime, &tm) == 1) {
        r.signing_time = utc_time_point(tm);
      }
    }

    const EVP_MD* md = EVP_get_digestbyobj(dig_oid);
    const int mi = CMS_signed_get_attr_by_NID(si, NID_pkcs9_messageDigest, -1);
    const ASN1_TYPE* mt =
        mi >= 0 ? X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, mi), 0) : nullptr;
    if (signer == nullptr) {
      r.integrity_detail = "signer certificate not in the signature";
      r.integrity_failure = IntegrityFailure::Format;
    } else if (md == nullptr || mt == nullptr || mt->type != V_ASN1_OCTET_STRING) {
      r.integrity_detail = "no messageDigest attribute";
      r.integrity_failure = IntegrityFailure::Format;
    } else {
      const Bytes want(ASN1_STRING_get0_data(mt->value.octet_string),
                       ASN1_STRING_get0_data(mt->value.octet_string) +
                           ASN1_STRING_length(mt->value.octet_string));
      const Bytes got = content_digest(md);
      if (got != want) {
        r.integrity_detail = "content digest does not match: the document was changed";
        r.integrity_failure = IntegrityFailure::Digest;
      } else if (CMS_SignerInfo_verify(si) != 1) {
        r.integrity_detail = "signature value invalid: " + openssl_error();
        r.integrity_failure = IntegrityFailure::SignatureValue;
      } else {
        r.integrity = true;
      }
    }
    LongTermInputs lt = document != nullptr ? *document : LongTermInputs{};
    // CAdES B-LT / B-LTA: validation data in the SignedData, archive-time-stamp-v3.
    try {
      const ValidationData own = cms_validation_data(der);
      if (!own.ocsps.empty() || !own.crls.empty()) {
        lt.data.merge(own);
        lt.claims_long_term = true;
      }
      const auto archives =
          cms_archive_timestamps(der, static_cast<std::size_t>(i),
                                 [&](HashAlgorithm h) { return content_digest(evp_md(h)); });
      lt.archive_timestamps.insert(lt.archive_timestamps.end(), archives.begin(), archives.end());
    } catch (const Error&) {
      // BER-encoded (not DER) SignedData: read by OpenSSL above, but no long-term data here
    }
    // Signature timestamp over the signature value.
    const int tsi = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1);
    if (tsi >= 0) {
      const ASN1_TYPE* tt = X509_ATTRIBUTE_get0_type(CMS_unsigned_get_attr(si, tsi), 0);
      const ASN1_OCTET_STRING* sv = CMS_SignerInfo_get0_signature(si);
      if (tt != nullptr && tt->type == V_ASN1_SEQUENCE) {
        read_signature_timestamp(
            r, lt, {tt->value.sequence->data, static_cast<std::size_t>(tt->value.sequence->length)},
            {ASN1_STRING_get0_data(sv), static_cast<std::size_t>(ASN1_STRING_length(sv))}, o);
      }
    }
    if (signer != nullptr) check_ess_signing_certificate(r, si, signer);
    if (signer != nullptr) judge_long_term(r, x509_to_der(signer), certs_der, lt, o);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace detail

namespace {

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Bytes file_digest(const std::string& path, const EVP_MD* md) {
  std::ifstream in(path, std::ios::binary);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), md, nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  Bytes d(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
  return d;
}

}  // namespace

VerifyReport verify_file(const std::string& path, const VerifyOptions& o) {
  VerifyReport report;
  report.file = path;
  std::string head(1024, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
  }
  std::size_t first = head.find_first_not_of(" \t\r\n");
  if (head.rfind("\xEF\xBB\xBF", 0) == 0) first = 3;
  if (head.find("%PDF-") != std::string::npos) {
    report.kind = "pdf";
    report.signatures = detail::verify_pdf(path, o, &report.document_timestamps);
  } else if (first != std::string::npos && head[first] == '<') {
    report.kind = "xml";
    report.signatures = detail::verify_xml(read_all(path), o);
  } else {
    report.kind = "cms";
    if (head.rfind("-----BEGIN", 0) != 0 &&
        (head.empty() || static_cast<unsigned char>(head[0]) != 0x30)) {
      throw Error(ErrorCode::DocumentInvalid, path + " is neither XML, PDF nor CMS");
    }
    const Bytes der = detail::pem_or_der(read_all(path), path);
    if (!o.content.empty()) {
      const detail::ContentDigest content = [&](const EVP_MD* md) {
        return file_digest(o.content, md);
      };
      report.signatures = detail::verify_cms(der, &content, o, "cades");
    } else {
      report.signatures = detail::verify_cms(der, nullptr, o, "cades");
    }
  }
  return report;
}

void to_json(nlohmann::json& j, const SignatureReport& r) {
  auto time = [](const auto& t) {
    return t ? nlohmann::json(to_iso8601(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json signer = nullptr;
  if (r.signer) {
    nlohmann::json uids = nlohmann::json::array();
    for (const auto& u : r.signer->uids) uids.push_back({{"prefix", u.prefix}, {"value", u.value}});
    signer = {{"commonName", r.signer->common_name},
              {"subject", r.signer->subject},
              {"organization", r.signer->organization},
              {"title", r.signer->title},
              {"uids", uids},
              {"kind", std::string(to_string(r.signer->kind))},
              {"issuer", r.signer->issuer_common_name},
              {"serial", r.signer->serial_hex},
              {"certificateId", r.signer->id}};
  }
  j = {{"id", r.id},
       {"format", r.format},
       {"algorithm", r.algorithm},
       {"signer", signer},
       {"role", r.role ? nlohmann::json(std::string(to_string(*r.role))) : nlohmann::json(nullptr)},
       {"signingTime", time(r.signing_time)},
       {"timestamp", time(r.timestamp)},
       {"integrity",
        {{"ok", r.integrity},
         {"detail", r.integrity_detail},
         {"failure", std::string(to_string(r.integrity_failure))}}},
       {"chain", {{"status", std::string(to_string(r.chain))}, {"detail", r.chain_detail}}},
       {"revocation",
        {{"status", std::string(to_string(r.revocation))}, {"detail", r.revocation_detail}}},
       {"signingCertificate",
        {{"status", std::string(to_string(r.signing_certificate))},
         {"detail", r.signing_certificate_detail}}},
       {"coversWholeFile",
        r.covers_whole_file ? nlohmann::json(*r.covers_whole_file) : nlohmann::json(nullptr)},
       {"laterChanges",
        r.later_changes ? nlohmann::json{{"kind", std::string(to_string(r.later_changes->kind))},
                                         {"signaturesAdded", r.later_changes->signatures_added},
                                         {"formFieldsAdded", r.later_changes->form_fields_added},
                                         {"changed", r.later_changes->changed}}
                        : nlohmann::json(nullptr)},
       {"level", std::string(to_string(r.long_term.level))},
       {"longTerm", r.long_term},
       {"ok", r.ok()}};
}

void to_json(nlohmann::json& j, const LongTermReport& r) {
  auto time = [](const auto& t) {
    return t ? nlohmann::json(to_iso8601(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json archives = nlohmann::json::array();
  for (const auto& t : r.archive_timestamps) archives.push_back(to_iso8601(t));
  j = {{"level", std::string(to_string(r.level))},
       {"offline", r.offline},
       {"validatedAt", time(r.validated_at)},
       {"evidence", r.evidence},
       {"archiveTimestamps", archives},
       {"coveredUntil", time(r.covered_until)},
       {"problem", r.problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.problem)}};
}

void to_json(nlohmann::json& j, const VerifyReport& r) {
  nlohmann::json stamps = nlohmann::json::array();
  for (const auto& t : r.document_timestamps) {
    stamps.push_back({{"id", t.id},
                      {"time", t.time ? nlohmann::json(to_iso8601(*t.time)) : nlohmann::json()},
                      {"ok", t.time.has_value()},
                      {"detail", t.detail}});
  }
  j = {{"file", r.file},
       {"kind", r.kind},
       {"ok", r.ok()},
       {"signatures", r.signatures},
       {"documentTimestamps", stamps}};
}

}  // namespace kyso::formats
