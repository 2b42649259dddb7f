#pragma once
/// @file
/// Kyso's version (the project's, from CMake) and the line each program prints for --version.

#include <string>
#include <string_view>

namespace kyso {

/// PROJECT_VERSION, e.g. "0.1.0".
std::string_view version() noexcept;
/// "<program> <version>", plus " (git <revision>)" when `revision` is not empty (a build from a
/// git checkout; each program's build writes its revision into kyso_revision.hpp).
std::string version_line(std::string_view program, std::string_view revision);

}  // namespace kyso
