#pragma once
// TSA and OCSP requests and CRL downloads over core's HTTP(S) client (kyso/core/http.hpp),
// with the answers the formats code expects: a body only for a 2xx answer of the expected type.

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
