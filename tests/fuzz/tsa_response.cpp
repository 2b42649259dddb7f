// An RFC 3161 TSA's reply as the timestamp client receives it (formats/src/tsa.cpp,
// timestamp_from_reply: parse, PKIStatus and failure info, imprint, nonce and version against
// the request, the token's signature, genTime), then the token as verify reads it from a
// document (timestamp_time, verify_timestamp). The request is made to fit the reply (its
// imprint and nonce), so that a well-formed seed reaches every check.

#include <openssl/ts.h>

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "kyso/formats/tsa.hpp"
#include "tsa_digest.hpp"

namespace {
template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const noexcept { F(p); }
};
using RespPtr = std::unique_ptr<TS_RESP, Free<TS_RESP, TS_RESP_free>>;
using ReqPtr = std::unique_ptr<TS_REQ, Free<TS_REQ, TS_REQ_free>>;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ReqPtr req(TS_REQ_new());
  TS_REQ_set_version(req.get(), 1);
  TS_REQ_set_cert_req(req.get(), 1);
  {
    const unsigned char* p = data;
    RespPtr resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(size)));
    TS_TST_INFO* info = resp ? TS_RESP_get_tst_info(resp.get()) : nullptr;
    if (info != nullptr) {
      TS_REQ_set_msg_imprint(req.get(), TS_TST_INFO_get_msg_imprint(info));
      if (const ASN1_INTEGER* nonce = TS_TST_INFO_get_nonce(info))
        TS_REQ_set_nonce(req.get(), nonce);
    }
  }
  const kyso::Bytes reply(data, data + size);
  kyso::formats::TsaConfig config;
  config.url = "http://127.0.0.1:9/tsa";
  try {
    const auto ts = kyso::formats::detail::timestamp_from_reply(config, req.get(), reply);
    (void)kyso::formats::timestamp_time(ts.token);
    std::string why;
    (void)kyso::formats::verify_timestamp(ts.token, reply, {}, why);
  } catch (const kyso::Error&) {
  }
  // The reply's bytes as a bare token, as a document could carry one.
  try {
    (void)kyso::formats::timestamp_time(reply);
  } catch (const kyso::Error&) {
  }
  std::string why;
  (void)kyso::formats::verify_timestamp(reply, reply, {}, why);
  return 0;
}
