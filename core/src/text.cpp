#include "kyso/core/text.hpp"

#include <algorithm>

namespace kyso {
namespace {

char fold(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), fold);
  return out;
}

bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  return std::ranges::equal(a, b, [](char x, char y) { return fold(x) == fold(y); });
}

}  // namespace kyso
