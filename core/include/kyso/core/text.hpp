#pragma once
/// @file
/// ASCII text helpers for protocol tokens (hosts, header names, hex, CSV column names), where
/// the locale must not matter: only A-Z and a-z are folded, every other byte (UTF-8 included)
/// is left alone.

#include <string>
#include <string_view>

namespace kyso {

/// `s` with A-Z folded to a-z.
std::string ascii_lower(std::string_view s);
/// Whether `a` and `b` are equal when A-Z and a-z are folded.
bool ascii_iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace kyso
