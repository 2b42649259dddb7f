#include "http.hpp"

#include "kyso/core/error.hpp"
#include "kyso/core/http.hpp"
#include "kyso/core/text.hpp"

namespace kyso::formats::detail {

HttpResult http_request(const std::string& url, const Bytes* body, const char* content_type,
                        const char* expected_type, std::chrono::seconds timeout) {
  HttpResult r;
  try {
    http::Options o;
    o.connect_timeout = timeout;
    o.request_timeout = timeout;
    o.body_limit = 16UL << 20U;
    o.user_agent = "kyso-formats";
    http::Client client(url, o);
    auto res = body != nullptr
                   ? client.request("POST", "", std::string(body->begin(), body->end()),
                                    content_type != nullptr ? content_type : "", {}, true)
                   : client.request("GET", "", {}, {}, {}, true);
    if (res.status < 200 || res.status > 299) {
      r.error = url + " answered HTTP " + std::to_string(res.status);
      return r;
    }
    // A proxy's or web server's error page is not a TSA or OCSP answer.
    if (expected_type != nullptr &&
        ascii_lower(res.content_type).rfind(ascii_lower(expected_type), 0) != 0) {
      r.error = url + " answered " +
                (res.content_type.empty() ? "no Content-Type" : res.content_type) + ", not " +
                expected_type;
      return r;
    }
    r.body = Bytes(res.body.begin(), res.body.end());
  } catch (const Error& e) {
    r.error = e.detail();
  }
  return r;
}

}  // namespace kyso::formats::detail
