// A CRL as the revocation checks download it (DER or PEM, formats/src/cert_check.cpp load_crl)
// and read it: issuer, signature against the issuer's key, nextUpdate, and the lookup of a
// certificate's serial.

#include <openssl/x509.h>

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "revocation.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto crl = kyso::formats::detail::load_crl(kyso::Bytes(data, data + size));
  if (!crl) return 0;
  OPENSSL_free(X509_NAME_oneline(X509_CRL_get_issuer(crl.get()), nullptr, 0));
  (void)X509_CRL_get0_nextUpdate(crl.get());
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked) && i < 64; ++i) {
    X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    X509_REVOKED* found = nullptr;
    (void)X509_CRL_get0_by_serial(crl.get(), &found,
                                  const_cast<ASN1_INTEGER*>(X509_REVOKED_get0_serialNumber(r)));
  }
  return 0;
}
