#include "multipart.hpp"

#include <algorithm>

#include "kyso/core/error.hpp"
#include "kyso/core/text.hpp"

namespace kyso::verifyd {
namespace {

constexpr std::size_t kMaxParts = 4;

[[noreturn]] void bad(const std::string& why) {
  throw Error(ErrorCode::BadRequest, "multipart/form-data: " + why);
}

// The value of `key=` in a header's parameters, quoted or not.
std::string parameter(std::string_view header, std::string_view key) {
  const std::string h = ascii_lower(header);
  std::size_t at = 0;
  while ((at = h.find(key, at)) != std::string::npos) {
    const bool starts = at == 0 || h[at - 1] == ';' || h[at - 1] == ' ' || h[at - 1] == '\t';
    const std::size_t eq = at + key.size();
    if (starts && eq < h.size() && h[eq] == '=') {
      std::string_view v = header.substr(eq + 1);
      if (!v.empty() && v.front() == '"') {
        v.remove_prefix(1);
        return std::string(v.substr(0, v.find('"')));
      }
      return std::string(v.substr(0, v.find_first_of("; \t")));
    }
    at = eq;
  }
  return "";
}

}  // namespace

std::vector<FormPart> parse_multipart(std::string_view content_type, std::string_view body) {
  const std::string boundary = parameter(content_type, "boundary");
  if (boundary.empty() || boundary.size() > 70) bad("no usable boundary");
  const std::string delimiter = "--" + boundary;
  std::vector<FormPart> parts;
  std::size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos) bad("no part");
  pos += delimiter.size();
  while (true) {
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") bad("malformed delimiter line");
    pos += 2;
    const std::size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string_view::npos) bad("part without headers");
    const std::string_view headers = body.substr(pos, head_end - pos);
    const std::size_t start = head_end + 4;
    const std::size_t next = body.find("\r\n" + delimiter, start);
    if (next == std::string_view::npos) bad("unterminated part");
    std::string name;
    std::size_t line = 0;
    while (line < headers.size()) {
      std::size_t end = headers.find("\r\n", line);
      if (end == std::string_view::npos) end = headers.size();
      const std::string_view h = headers.substr(line, end - line);
      if (ascii_lower(h.substr(0, 20)) == "content-disposition:") name = parameter(h, "name");
      line = end + 2;
    }
    if (name.empty()) bad("a part without a name");
    if (parts.size() == kMaxParts) bad("more than 4 parts");
    parts.push_back({name, body.substr(start, next - start)});
    pos = next + 2 + delimiter.size();
  }
  return parts;
}

}  // namespace kyso::verifyd
