#pragma once
// Typed, located access to a TOML table. Every getter remembers the key it read so finish()
// can name any key nobody asked for (a typo like `alowed_origins` must not pass silently).
// Every mistake throws ConfigError with the file, line, column and dotted key.

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/firmware_config/config_error.hpp"

namespace kyso::firmware_config::detail {

/// Parses a file; a syntax error or an unreadable file becomes a ConfigError.
toml::table parse_toml_file(const std::filesystem::path& file);
/// Parses text (embedded default profiles); `name` stands for the file in messages.
toml::table parse_toml_text(std::string_view text, const std::string& name);

class Section {
 public:
  /// `path` is the dotted key of this table ("" for the root).
  Section(std::string file, const toml::table& table, std::string path);

  [[nodiscard]] const std::string& file() const noexcept { return file_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] bool has(std::string_view key) const;

  std::optional<std::string> string(std::string_view key);
  std::string string_or(std::string_view key, std::string fallback);
  std::string required_string(std::string_view key);
  std::optional<bool> boolean(std::string_view key);
  /// An integer within [min, max].
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  /// A list of strings (each non-empty).
  std::optional<std::vector<std::string>> strings(std::string_view key);
  /// A sub-table (`[a.b]` or an inline table).
  std::optional<Section> table(std::string_view key);
  /// An array of tables (`[[remote]]`).
  std::vector<Section> tables(std::string_view key);
  /// The keys of this table, for tables keyed by name (`[roles.teacher]`).
  [[nodiscard]] std::vector<std::string> keys() const;

  /// A path from the file; relative paths are taken from the config file's directory.
  /// `must_exist` refuses a path that is not there.
  std::optional<std::string> file_path(std::string_view key, bool must_exist);
  std::optional<std::vector<std::string>> file_paths(std::string_view key, bool must_exist);

  /// Throws ConfigError located at `key` (or this table when the key is absent).
  [[noreturn]] void fail(std::string_view key, const std::string& what_en,
                         const std::string& what_vi) const;
  /// Throws ConfigError located at element `index` of array `key`.
  [[noreturn]] void fail_at(std::string_view key, std::size_t index, const std::string& what_en,
                            const std::string& what_vi) const;
  /// Refuses keys that no getter read.
  void finish() const;

 private:
  [[nodiscard]] std::string dotted(std::string_view key) const;
  const toml::node* node(std::string_view key);
  [[noreturn]] void fail_type(std::string_view key, const char* want_en, const char* want_vi) const;
  std::string resolve(const std::string& p) const;

  std::string file_;
  const toml::table* table_;
  std::string path_;
  std::shared_ptr<std::set<std::string, std::less<>>> seen_;
};

/// Validates a browser origin "scheme://host[:port]" and returns it normalized (lower case,
/// default port dropped); nullopt with `why_en`/`why_vi` set when it is not one.
std::optional<std::string> normalize_origin(std::string_view origin, std::string& why_en,
                                            std::string& why_vi);
/// An http(s) URL with a host (paths allowed).
bool valid_http_url(std::string_view url, bool https_only);

/// `key` = "address:port" ("[::]:port"; an IP address, no names; port 0: any free port) into
/// `address` and `port`; both left alone when the key is absent.
void read_listen(Section& s, std::string_view key, std::string& address, std::uint16_t& port);
/// Refuses a secret file (TLS key, PIN file) that group or others may read.
void check_private(const Section& s, std::string_view key, const std::string& path);

}  // namespace kyso::firmware_config::detail
