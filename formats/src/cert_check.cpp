#include "kyso/formats/cert_check.hpp"

#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

#include "der.hpp"
#include "http.hpp"
#include "kyso/core/http.hpp"
#include "kyso/core/text.hpp"
#include "revocation.hpp"

namespace kyso::formats {
namespace detail {
namespace {

using OcspReqPtr = std::unique_ptr<OCSP_REQUEST, FnDeleter<OCSP_REQUEST_free>>;
using OcspRespPtr = std::unique_ptr<OCSP_RESPONSE, FnDeleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, FnDeleter<OCSP_BASICRESP_free>>;

Bytes http_exchange(const std::string& url, const Bytes* body, const char* content_type,
                    const char* expected, std::chrono::seconds timeout) {
  auto r = http_request(url, body, content_type, expected, timeout);
  return r.body ? std::move(*r.body) : Bytes{};
}

}  // namespace

std::optional<OcspAnswer> fetch_ocsp(const std::string& url, X509* leaf, X509* issuer,
                                     STACK_OF(X509) * untrusted, X509_STORE* store,
                                     std::chrono::seconds timeout) {
  OcspReqPtr req(OCSP_REQUEST_new());
  OCSP_CERTID* id = OCSP_cert_to_id(EVP_sha1(), leaf, issuer);
  check(req && id != nullptr, "OCSP request");
  OCSP_CERTID* id_copy = OCSP_CERTID_dup(id);
  check(OCSP_request_add0_id(req.get(), id) != nullptr, "OCSP request id");
  std::unique_ptr<OCSP_CERTID, FnDeleter<OCSP_CERTID_free>> id_keep(id_copy);
  check(OCSP_request_add1_nonce(req.get(), nullptr, -1) == 1, "OCSP nonce");
  const Bytes body = i2d_bytes(req.get(), i2d_OCSP_REQUEST);
  Bytes answer =
      http_exchange(url, &body, "application/ocsp-request", "application/ocsp-response", timeout);
  return check_ocsp_answer(std::move(answer), req.get(), id_keep.get(), untrusted, store);
}

std::optional<OcspAnswer> check_ocsp_answer(Bytes answer, OCSP_REQUEST* req, OCSP_CERTID* id,
                                            STACK_OF(X509) * untrusted, X509_STORE* store) {
  if (answer.empty()) return std::nullopt;
  const unsigned char* p = answer.data();
  OcspRespPtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(answer.size())));
  if (!resp || OCSP_response_status(resp.get()) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
    return std::nullopt;
  OcspBasicPtr basic(OCSP_response_get1_basic(resp.get()));
  if (!basic || OCSP_check_nonce(req, basic.get()) <= 0 ||
      OCSP_basic_verify(basic.get(), untrusted, store, 0) != 1) {
    openssl_error();
    return std::nullopt;  // an answer we cannot trust is no answer
  }
  int status = -1;
  int reason = 0;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (OCSP_resp_find_status(basic.get(), id, &status, &reason, &revoked_at, &this_update,
                            &next_update) != 1 ||
      OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
    openssl_error();
    return std::nullopt;
  }
  return OcspAnswer{std::move(answer), status};
}

CrlPtr load_crl(const Bytes& data) {
  const unsigned char* p = data.data();
  CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(data.size())));
  if (!crl) {
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    crl.reset(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  }
  openssl_error();
  return crl;
}

Bytes fetch_url(const std::string& url, std::chrono::seconds timeout) {
  if (url.rfind("file://", 0) == 0 || url.rfind('/', 0) == 0) {
    const std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  return http_exchange(url, nullptr, nullptr, nullptr, timeout);
}

}  // namespace detail

namespace {

using detail::CrlPtr;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FnDeleter<X509_STORE_CTX_free>>;

enum class Revocation { Good, Revoked, Unknown };

// Whether `url` is an http(s) URL on one of `hosts` ("host" any port, "host:port" that port;
// case-insensitive). No userinfo, no file:// and no path-only URLs.
bool fetch_allowed(const std::string& url, const std::vector<std::string>& hosts) {
  if (hosts.empty()) return true;
  http::Url u;
  try {
    u = http::Url::parse(url);
  } catch (const Error&) {
    return false;
  }
  if (u.host.find('@') != std::string::npos) return false;
  const std::string host = ascii_lower(u.host);
  return std::ranges::any_of(hosts, [&](const std::string& h) {
    const std::string want = ascii_lower(h);
    return want == host || want == host + ":" + u.port || want == "[" + host + "]:" + u.port;
  });
}

std::vector<std::string> fenced(const std::vector<std::string>& urls,
                                const std::vector<std::string>& hosts) {
  std::vector<std::string> out;
  std::ranges::copy_if(urls, std::back_inserter(out),
                       [&](const std::string& u) { return fetch_allowed(u, hosts); });
  return out;
}

std::optional<Revocation> ask_ocsp(const std::string& url, X509* leaf, X509* issuer,
                                   STACK_OF(X509) * untrusted, X509_STORE* store,
                                   std::chrono::seconds timeout) {
  const auto answer = detail::fetch_ocsp(url, leaf, issuer, untrusted, store, timeout);
  if (!answer) return std::nullopt;
  if (answer->status == V_OCSP_CERTSTATUS_REVOKED) return Revocation::Revoked;
  if (answer->status == V_OCSP_CERTSTATUS_GOOD) return Revocation::Good;
  return Revocation::Unknown;
}

std::optional<Revocation> ask_crl(const std::vector<std::string>& sources, X509* leaf, X509* issuer,
                                  std::chrono::system_clock::time_point at,
                                  std::chrono::seconds timeout) {
  for (const auto& src : sources) {
    CrlPtr crl = detail::load_crl(detail::fetch_url(src, timeout));
    if (!crl) continue;
    // Only a CRL from this certificate's issuer, signed by it and still current, counts.
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(issuer)) != 0 ||
        X509_CRL_verify(crl.get(), X509_get0_pubkey(issuer)) != 1) {
      openssl_error();
      continue;
    }
    const std::time_t t = std::chrono::system_clock::to_time_t(at);
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next != nullptr && X509_cmp_time(next, const_cast<std::time_t*>(&t)) < 0) continue;
    X509_REVOKED* rev = nullptr;
    return X509_CRL_get0_by_cert(crl.get(), &rev, leaf) == 1 ? Revocation::Revoked
                                                             : Revocation::Good;
  }
  return std::nullopt;
}

}  // namespace

CertificateChecker::CertificateChecker(TrustConfig config) : config_(std::move(config)) {}

CertCheckResult CertificateChecker::evaluate(const Credential& cred,
                                             std::chrono::system_clock::time_point at) {
  CertCheckResult r;
  auto problem = [&](ErrorCode code, std::string detail) {
    r.ok = false;
    r.problems.emplace_back(code, std::move(detail));
  };
  const CertificateInfo& c = cred.cert;
  if (at < c.not_before)
    problem(ErrorCode::CertNotYetValid, "valid from " + to_iso8601(c.not_before));
  if (at > c.not_after) problem(ErrorCode::CertExpired, "expired " + to_iso8601(c.not_after));
  if (!c.can_sign())
    problem(ErrorCode::CertKeyUsage,
            "key usage allows neither digitalSignature nor nonRepudiation");

  X509Ptr leaf = x509_from_der(c.der);
  detail::X509StorePtr store = detail::make_store(config_.anchors);
  detail::X509StackPtr untrusted(sk_X509_new_null());
  for (const auto& der : cred.chain) sk_X509_push(untrusted.get(), x509_from_der(der).release());
  for (const auto& file : config_.intermediates) {
    for (auto& x : x509_read_file(file)) sk_X509_push(untrusted.get(), x.release());
  }
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  detail::check(
      ctx && X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) == 1,
      "X509_STORE_CTX");
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(at));
  X509Ptr issuer;
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    // The leaf's own dates are reported above; anything else is a chain problem.
    if (err != X509_V_ERR_CERT_HAS_EXPIRED && err != X509_V_ERR_CERT_NOT_YET_VALID) {
      problem(ErrorCode::CertUntrusted, X509_verify_cert_error_string(err));
    } else if (X509_STORE_CTX_get_error_depth(ctx.get()) > 0) {
      problem(ErrorCode::CertUntrusted,
              std::string("issuer: ") + X509_verify_cert_error_string(err));
    }
    openssl_error();
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  if (chain != nullptr && sk_X509_num(chain) > 1) {
    issuer.reset(X509_dup(sk_X509_value(chain, 1)));
  } else {
    for (int i = 0; i < sk_X509_num(untrusted.get()); ++i) {
      if (X509_check_issued(sk_X509_value(untrusted.get(), i), leaf.get()) == X509_V_OK) {
        issuer.reset(X509_dup(sk_X509_value(untrusted.get(), i)));
      }
    }
  }

  r.revocation = "skipped";
  if (config_.check_revocation) {
    r.revocation = "unknown";
    std::optional<Revocation> status;
    if (issuer) {
      std::vector<std::string> ocsp = config_.ocsp_url.empty()
                                          ? fenced(c.ocsp_urls, config_.fetch_hosts)
                                          : std::vector{config_.ocsp_url};
      for (const auto& url : ocsp) {
        status =
            ask_ocsp(url, leaf.get(), issuer.get(), untrusted.get(), store.get(), config_.timeout);
        if (status && *status != Revocation::Unknown) {
          r.revocation = "ocsp";
          break;
        }
      }
      if ((!status || *status == Revocation::Unknown) && config_.crl_fallback) {
        std::vector<std::string> sources = config_.crl_files;
        const auto urls = fenced(c.crl_urls, config_.fetch_hosts);
        sources.insert(sources.end(), urls.begin(), urls.end());
        status = ask_crl(sources, leaf.get(), issuer.get(), at, config_.timeout);
        if (status) r.revocation = "crl";
      }
    }
    if (status == Revocation::Revoked) {
      problem(ErrorCode::CertRevoked, "revoked (" + r.revocation + ")");
    } else if (!status || *status == Revocation::Unknown) {
      r.revocation = "unknown";
      problem(ErrorCode::CertRevocationUnknown, "neither OCSP nor a CRL could say");
    }
  }
  return r;
}

CertCheckResult CertificateChecker::check(const Credential& cred,
                                          std::chrono::system_clock::time_point at) {
  CertCheckResult r;
  {
    std::unique_lock lock(mutex_);
    const auto it = cache_.find(cred.id());
    if (it != cache_.end()) {
      r = it->second;
    } else {
      lock.unlock();
      r = evaluate(cred, at);
      lock.lock();
      cache_.emplace(cred.id(), r);
    }
  }
  if (!r.ok && config_.policy == CheckPolicy::Refuse) throw r.problems.front();
  return r;
}

CheckedSigner::CheckedSigner(std::shared_ptr<Signer> inner,
                             std::shared_ptr<CertificateChecker> checker)
    : inner_(std::move(inner)), checker_(std::move(checker)) {}

void CheckedSigner::ensure_checked() {
  const std::scoped_lock lock(mutex_);
  if (!checked_) {
    result_ = checker_->check(inner_->credential());
    checked_ = true;
  }
}

void CheckedSigner::authorize(const UserAuth& typed, std::span<const Bytes> digests) {
  // Before the PIN is even asked for: a refused certificate costs the user nothing.
  ensure_checked();
  inner_->authorize(typed, digests);
}

Bytes CheckedSigner::sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                                 SignatureEncoding enc) {
  ensure_checked();
  return inner_->sign_digest(alg, digest, enc);
}

}  // namespace kyso::formats
