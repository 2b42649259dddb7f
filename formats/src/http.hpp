#pragma once
// A minimal HTTP/1.0 client for TSA and OCSP requests and CRL downloads (plain http://, as
// those services are usually served): OpenSSL's HTTP client over a socket connected here with a
// real timeout (OpenSSL's own connect keeps retrying a refused connection until its timeout).

#include <chrono>
#include <optional>
#include <string>

#include "kyso/core/bytes.hpp"

namespace kyso::formats::detail {

struct HttpResult {
  std::optional<Bytes> body;  ///< set on a 2xx answer
  std::string error;          ///< why not, for `detail` strings
};

/// POST `body` when given, else GET. Never throws for network trouble.
HttpResult http_request(const std::string& url, const Bytes* body, const char* content_type,
                        const char* expected_type, std::chrono::seconds timeout);

}  // namespace kyso::formats::detail
