#include "kyso/firmware_config/config_error.hpp"

namespace kyso::firmware_config {
namespace {

std::string locate(const std::string& file, std::uint32_t line, std::uint32_t column,
                   const std::string& key, const std::string& what) {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + what;
}

}  // namespace

ConfigError::ConfigError(std::string file, std::uint32_t line, std::uint32_t column,
                         std::string key, std::string what_en, std::string what_vi)
    : Error(ErrorCode::ConfigInvalid, locate(file, line, column, key, what_en)),
      file_(std::move(file)),
      line_(line),
      column_(column),
      key_(std::move(key)),
      what_en_(std::move(what_en)),
      what_vi_(std::move(what_vi)) {}

std::string ConfigError::located(Language lang) const {
  return locate(file_, line_, column_, key_, lang == Language::Vi ? what_vi_ : what_en_);
}

}  // namespace kyso::firmware_config
