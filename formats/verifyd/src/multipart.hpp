#pragma once
// multipart/form-data (RFC 7578) as browsers and curl -F send it: the parts' names and bodies,
// as views into the request body. Only what the validate endpoint needs: a few named parts.

#include <string>
#include <string_view>
#include <vector>

namespace kyso::verifyd {

struct FormPart {
  std::string name;
  std::string_view body;
};

/// Throws Error(BadRequest) for a missing boundary, a malformed body or more than 4 parts.
std::vector<FormPart> parse_multipart(std::string_view content_type, std::string_view body);

}  // namespace kyso::verifyd
