#include "kyso/formats/tsa.hpp"
#include "kyso/core/certificate.hpp"

#include <openssl/http.h>
#include <openssl/ts.h>

#include <ctime>

#include "der.hpp"
#include "http.hpp"
#include "kyso/core/random.hpp"
#include "tsa_digest.hpp"

namespace kyso::formats {
namespace {

using detail::check;
using TsReqPtr = std::unique_ptr<TS_REQ, FnDeleter<TS_REQ_free>>;
using TsRespPtr = std::unique_ptr<TS_RESP, FnDeleter<TS_RESP_free>>;
using TsVerifyPtr = std::unique_ptr<TS_VERIFY_CTX, FnDeleter<TS_VERIFY_CTX_free>>;
using TsImprintPtr = std::unique_ptr<TS_MSG_IMPRINT, FnDeleter<TS_MSG_IMPRINT_free>>;
using AlgorPtr = std::unique_ptr<X509_ALGOR, FnDeleter<X509_ALGOR_free>>;
using IntPtr = std::unique_ptr<ASN1_INTEGER, FnDeleter<ASN1_INTEGER_free>>;
using BnPtr = std::unique_ptr<BIGNUM, FnDeleter<BN_free>>;
using TstPtr = std::unique_ptr<TS_TST_INFO, FnDeleter<TS_TST_INFO_free>>;
using Pkcs7Ptr = std::unique_ptr<PKCS7, FnDeleter<PKCS7_free>>;

std::chrono::system_clock::time_point gen_time(const TS_TST_INFO* info) {
  std::tm tm{};
  check(ASN1_TIME_to_tm(TS_TST_INFO_get_time(info), &tm) == 1, "genTime");
  return utc_time_point(tm);
}

TsReqPtr make_request(const TsaConfig& config, std::span<const std::uint8_t> hash) {
  TsReqPtr req(TS_REQ_new());
  check(req != nullptr && TS_REQ_set_version(req.get(), 1) == 1, "TS_REQ");
  TsImprintPtr imprint(TS_MSG_IMPRINT_new());
  AlgorPtr alg(X509_ALGOR_new());
  check(imprint != nullptr && alg != nullptr, "TS_MSG_IMPRINT");
  X509_ALGOR_set_md(alg.get(), detail::evp_md(config.hash));
  check(TS_MSG_IMPRINT_set_algo(imprint.get(), alg.get()) == 1 &&
            TS_MSG_IMPRINT_set_msg(imprint.get(), const_cast<std::uint8_t*>(hash.data()),
                                   static_cast<int>(hash.size())) == 1 &&
            TS_REQ_set_msg_imprint(req.get(), imprint.get()) == 1,
        "message imprint");
  // A fresh 64-bit nonce: the response must echo it, so an old or replayed answer is refused.
  std::array<unsigned char, 8> raw{};
  random_bytes(raw);
  raw[0] &= 0x7F;
  BnPtr bn(BN_bin2bn(raw.data(), static_cast<int>(raw.size()), nullptr));
  IntPtr nonce(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  check(nonce != nullptr && TS_REQ_set_nonce(req.get(), nonce.get()) == 1, "nonce");
  check(TS_REQ_set_cert_req(req.get(), 1) == 1, "certReq");
  return req;
}

Bytes post(const TsaConfig& config, const Bytes& body) {
  auto r = detail::http_request(config.url, &body, "application/timestamp-query",
                                "application/timestamp-reply", config.timeout);
  if (!r.body) throw Error(ErrorCode::TsaUnavailable, "TSA " + config.url + ": " + r.error);
  return std::move(*r.body);
}

}  // namespace

Timestamp request_timestamp(const TsaConfig& config, std::span<const std::uint8_t> data) {
  return detail::request_timestamp_for_digest(config, digest(openssl_md_name(config.hash), data));
}

namespace detail {

Timestamp request_timestamp_for_digest(const TsaConfig& config,
                                       std::span<const std::uint8_t> hash) {
  TsReqPtr req = make_request(config, hash);
  const Bytes reply = post(config, detail::i2d_bytes(req.get(), i2d_TS_REQ));
  return timestamp_from_reply(config, req.get(), reply);
}

Timestamp timestamp_from_reply(const TsaConfig& config, TS_REQ* req, const Bytes& reply) {
  const unsigned char* p = reply.data();
  TsRespPtr resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(reply.size())));
  if (!resp) throw Error(ErrorCode::TsaError, "TSA answer is not a TimeStampResp");
  const TS_STATUS_INFO* status = TS_RESP_get_status_info(resp.get());
  const long code = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(status));
  if (code != 0 && code != 1) {
    const ASN1_BIT_STRING* fail = TS_STATUS_INFO_get0_failure_info(status);
    const bool busy = fail != nullptr && ASN1_BIT_STRING_get_bit(fail, TS_INFO_SYSTEM_FAILURE) == 1;
    throw Error(busy || code == 3 ? ErrorCode::TsaUnavailable : ErrorCode::TsaError,
                "TSA refused the request (PKIStatus " + std::to_string(code) + ")");
  }

  // The answer must match this request: imprint, nonce, version; signed by the TSA.
  TsVerifyPtr vctx(TS_REQ_to_TS_VERIFY_CTX(req, nullptr));
  check(vctx != nullptr, "TS_VERIFY_CTX");
  if (!config.trusted_pem.empty()) {
    TS_VERIFY_CTX_add_flags(vctx.get(), TS_VFY_SIGNATURE);
    TS_VERIFY_CTX_set_store(vctx.get(), detail::make_store(config.trusted_pem).release());
  } else {
    // Without anchors OpenSSL has no verified signer to compare a TSA's own name with
    // (TS_VFY_SIGNER would fail every TSA that names itself, as most do); the token's signature
    // is checked below instead. Imprint, nonce and version are checked either way.
    TS_VERIFY_CTX_set_flags(vctx.get(), TS_VFY_VERSION | TS_VFY_IMPRINT | TS_VFY_NONCE);
  }
  if (TS_RESP_verify_response(vctx.get(), resp.get()) != 1) {
    throw Error(ErrorCode::TsaError, "TSA answer does not match the request: " + openssl_error());
  }
  PKCS7* token = TS_RESP_get_token(resp.get());
  if (config.trusted_pem.empty() &&
      PKCS7_verify(token, nullptr, nullptr, nullptr, nullptr, PKCS7_NOVERIFY) != 1) {
    throw Error(ErrorCode::TsaError, "TSA token signature invalid: " + openssl_error());
  }
  Timestamp ts;
  ts.token = detail::i2d_bytes(token, i2d_PKCS7);
  ts.time = gen_time(TS_RESP_get_tst_info(resp.get()));
  return ts;
}

}  // namespace detail

std::chrono::system_clock::time_point timestamp_time(std::span<const std::uint8_t> token) {
  const unsigned char* p = token.data();
  Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(token.size())));
  if (!p7) throw Error(ErrorCode::TsaError, "not a timestamp token");
  TstPtr info(PKCS7_to_TS_TST_INFO(p7.get()));
  if (!info) throw Error(ErrorCode::TsaError, "not a timestamp token");
  return gen_time(info.get());
}

namespace {

// The checks shared by both verify functions; `data` is owned by the verify context.
std::optional<std::chrono::system_clock::time_point> verify_token(
    std::span<const std::uint8_t> token, unsigned data_flag,
    const std::function<void(TS_VERIFY_CTX*, TS_TST_INFO*)>& set_data,
    const std::vector<std::string>& anchors, std::string& why) {
  const unsigned char* p = token.data();
  Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(token.size())));
  TstPtr info(p7 ? PKCS7_to_TS_TST_INFO(p7.get()) : nullptr);
  if (!info) {
    why = "not a timestamp token";
    openssl_error();
    return std::nullopt;
  }
  TsVerifyPtr ctx(TS_VERIFY_CTX_new());
  unsigned flags = TS_VFY_VERSION | data_flag;
  set_data(ctx.get(), info.get());
  if (!anchors.empty()) {
    flags |= TS_VFY_SIGNATURE;
    TS_VERIFY_CTX_set_store(ctx.get(), detail::make_store(anchors).release());
  }
  TS_VERIFY_CTX_set_flags(ctx.get(), static_cast<int>(flags));
  if (TS_RESP_verify_token(ctx.get(), p7.get()) != 1) {
    why = "timestamp does not verify: " + openssl_error();
    return std::nullopt;
  }
  if (anchors.empty() &&
      PKCS7_verify(p7.get(), nullptr, nullptr, nullptr, nullptr, PKCS7_NOVERIFY) != 1) {
    why = "timestamp signature invalid: " + openssl_error();
    return std::nullopt;
  }
  return gen_time(info.get());
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> verify_timestamp(
    std::span<const std::uint8_t> token, std::span<const std::uint8_t> data,
    const std::vector<std::string>& anchors, std::string& why) {
  return verify_token(
      token, TS_VFY_DATA,
      [&](TS_VERIFY_CTX* ctx, TS_TST_INFO*) {
        // owned by ctx from here
        TS_VERIFY_CTX_set_data(ctx, BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
      },
      anchors, why);
}

std::optional<std::chrono::system_clock::time_point> detail::verify_timestamp_digest(
    std::span<const std::uint8_t> token, const std::function<Bytes(HashAlgorithm)>& content_digest,
    const std::vector<std::string>& anchors, std::string& why) {
  return verify_token(
      token, TS_VFY_IMPRINT,
      [&](TS_VERIFY_CTX* ctx, TS_TST_INFO* info) {
        const X509_ALGOR* alg = TS_MSG_IMPRINT_get_algo(TS_TST_INFO_get_msg_imprint(info));
        const ASN1_OBJECT* oid = nullptr;
        X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
        std::optional<HashAlgorithm> h;
        switch (OBJ_obj2nid(oid)) {
          case NID_sha256:
            h = HashAlgorithm::Sha256;
            break;
          case NID_sha384:
            h = HashAlgorithm::Sha384;
            break;
          case NID_sha512:
            h = HashAlgorithm::Sha512;
            break;
          default:
            return;  // no imprint set: the verification fails
        }
        const Bytes d = content_digest(*h);
        auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(d.size()));
        if (copy == nullptr) return;
        std::copy(d.begin(), d.end(), copy);
        TS_VERIFY_CTX_set_imprint(ctx, copy, static_cast<long>(d.size()));  // owned by ctx
      },
      anchors, why);
}

}  // namespace kyso::formats
