#pragma once
/// @file
/// A configuration mistake, located: which file, line, column and key, and what is wrong, in
/// English (the Error's detail, for logs) and Vietnamese (for IT staff reading `kyso` output).

#include <cstdint>
#include <string>

#include "kyso/core/error.hpp"

namespace kyso::firmware_config {

class ConfigError : public Error {
 public:
  /// detail() reads "<file>:<line>:<column>: <key>: <what_en>".
  ConfigError(std::string file, std::uint32_t line, std::uint32_t column, std::string key,
              std::string what_en, std::string what_vi);

  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] std::uint32_t line() const noexcept { return line_; }
  [[nodiscard]] std::uint32_t column() const noexcept { return column_; }
  /// Dotted key path, e.g. "origins.allowed[1]" or "limits.max_connections".
  [[nodiscard]] const std::string& key() const noexcept { return key_; }
  [[nodiscard]] const std::string& what_en() const noexcept { return what_en_; }
  [[nodiscard]] const std::string& what_vi() const noexcept { return what_vi_; }
  /// "<file>:<line>:<column>: <key>: <what>" in the given language.
  [[nodiscard]] std::string located(Language lang) const;

 private:
  std::string file_;
  std::uint32_t line_;
  std::uint32_t column_;
  std::string key_;
  std::string what_en_;
  std::string what_vi_;
};

}  // namespace kyso::firmware_config
