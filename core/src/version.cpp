#include "kyso/core/version.hpp"

namespace kyso {

std::string_view version() noexcept {
  return KYSO_VERSION;
}

std::string version_line(std::string_view program, std::string_view revision) {
  std::string out(program);
  out += ' ';
  out += version();
  if (!revision.empty()) {
    out += " (git ";
    out += revision;
    out += ')';
  }
  return out;
}

}  // namespace kyso
