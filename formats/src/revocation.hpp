#pragma once
// Fetching revocation data: the OCSP exchange and CRL download shared by the checks before
// signing (cert_check.cpp) and the collection of validation data for B-LT (longterm.cpp).

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <chrono>
#include <optional>
#include <string>

#include "kyso/core/bytes.hpp"

namespace kyso::formats::detail {

using CrlPtr = std::unique_ptr<X509_CRL, FnDeleter<X509_CRL_free>>;

/// A verified OCSP answer about one certificate.
struct OcspAnswer {
  Bytes der;   ///< the whole OCSPResponse, as the responder sent it
  int status;  ///< V_OCSP_CERTSTATUS_GOOD / _REVOKED / _UNKNOWN
};

/// Asks `url` about `leaf` (a fresh nonce); returns the answer only when it is successful, echoes
/// the nonce, is signed by an authorized responder chaining to `store`, names `leaf` and is
/// current. Never throws for network trouble: nullopt.
std::optional<OcspAnswer> fetch_ocsp(const std::string& url, X509* leaf, X509* issuer,
                                     STACK_OF(X509) * untrusted, X509_STORE* store,
                                     std::chrono::seconds timeout);

/// fetch_ocsp()'s checks of the bytes a responder sent for `req` (its nonce) about `id`: the same
/// answer or nullopt. Apart so that the fuzz target (tests/fuzz) feeds it what a responder could.
std::optional<OcspAnswer> check_ocsp_answer(Bytes answer, OCSP_REQUEST* req, OCSP_CERTID* id,
                                            STACK_OF(X509) * untrusted, X509_STORE* store);

/// The bytes at an http:// or file:// URL (or an absolute path); empty when unreachable.
Bytes fetch_url(const std::string& url, std::chrono::seconds timeout);

/// A DER or PEM CRL, or null.
CrlPtr load_crl(const Bytes& data);

}  // namespace kyso::formats::detail
