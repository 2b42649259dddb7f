// An OCSP responder's answer as the checks before signing and the B-LT collection receive it
// (formats/src/cert_check.cpp, check_ocsp_answer: parse, status, nonce, signature, the single
// response about our certificate, its validity window). The request is made to fit the answer
// (its nonce and the CertID of its first single response) and the certificates the answer
// carries are trusted, so that a well-formed seed reaches every check after the signature.

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "revocation.hpp"

namespace {
template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const noexcept { F(p); }
};
using RespPtr = std::unique_ptr<OCSP_RESPONSE, Free<OCSP_RESPONSE, OCSP_RESPONSE_free>>;
using BasicPtr = std::unique_ptr<OCSP_BASICRESP, Free<OCSP_BASICRESP, OCSP_BASICRESP_free>>;
using ReqPtr = std::unique_ptr<OCSP_REQUEST, Free<OCSP_REQUEST, OCSP_REQUEST_free>>;
using IdPtr = std::unique_ptr<OCSP_CERTID, Free<OCSP_CERTID, OCSP_CERTID_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
struct StackFree {
  void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ReqPtr req(OCSP_REQUEST_new());
  IdPtr id;
  StorePtr store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  {
    const unsigned char* p = data;
    RespPtr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(size)));
    BasicPtr basic(resp ? OCSP_response_get1_basic(resp.get()) : nullptr);
    if (basic) {
      const int at = OCSP_BASICRESP_get_ext_by_NID(basic.get(), NID_id_pkix_OCSP_Nonce, -1);
      if (at >= 0) OCSP_REQUEST_add_ext(req.get(), OCSP_BASICRESP_get_ext(basic.get(), at), -1);
      if (OCSP_resp_count(basic.get()) > 0) {
        id.reset(OCSP_CERTID_dup(OCSP_SINGLERESP_get0_id(OCSP_resp_get0(basic.get(), 0))));
      }
      const STACK_OF(X509)* certs = OCSP_resp_get0_certs(basic.get());
      for (int i = 0; i < sk_X509_num(certs); ++i)
        X509_STORE_add_cert(store.get(), sk_X509_value(certs, i));
    }
  }
  if (!id) id.reset(OCSP_CERTID_new());
  try {
    (void)kyso::formats::detail::check_ocsp_answer(kyso::Bytes(data, data + size), req.get(),
                                                   id.get(), untrusted.get(), store.get());
  } catch (const kyso::Error&) {
  }
  return 0;
}
