#pragma once
/// @file
/// Origins the user paired with the agent, kept in `<state_dir>/pairings.json` (mode 0600).
/// Read afresh on every check so `kyso origins revoke` takes effect on a running agent. Every
/// origin is compared (and stored) in normalize_origin()'s form.

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace kyso::agent {

struct Pairing {
  std::string origin;
  std::string paired_at;  ///< RFC 3339 UTC
};

class PairingStore {
 public:
  explicit PairingStore(std::filesystem::path file);

  [[nodiscard]] bool contains(std::string_view origin) const;
  void add(std::string_view origin);
  /// Returns false when the origin was not paired.
  bool remove(std::string_view origin);
  [[nodiscard]] std::vector<Pairing> list() const;
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

 private:
  [[nodiscard]] std::vector<Pairing> load() const;
  void save(const std::vector<Pairing>& pairings) const;

  std::filesystem::path file_;
  mutable std::mutex mutex_;
};

/// The one form in which the agent compares origins (the browser's Origin header, the user's
/// pairings and IT's allow-list alike): scheme and host in lower case, the scheme's default port
/// dropped (`https://HocBa.Example.vn:443` -> `https://hocba.example.vn`), a port without
/// leading zeros. Text that is not `scheme://host[:port]` comes back lower-cased only; it is
/// never pairable and matches no well-formed allow-list entry.
std::string normalize_origin(std::string_view origin);

/// Whether a browser origin may be paired at all: `https://host[:port]`, or `http://` on
/// localhost / 127.0.0.1 / [::1] (development). Anything else (http sites, file:, "null",
/// extensions) can only be allow-listed by IT.
bool origin_pairable(std::string_view origin);

/// Syntactic check of a serialized origin: scheme://host[:port], no path, no user info.
bool origin_well_formed(std::string_view origin);

/// The default state directory: $XDG_DATA_HOME/kyso, else $HOME/.local/share/kyso, else (no
/// HOME) the user's home from the password database (getpwuid), never /tmp. Throws
/// Error(ConfigInvalid) when none is known.
std::filesystem::path default_state_dir();

/// Makes `dir` (0700) when missing and checks it is a directory owned by this user with mode
/// 0700, tightening the mode of one it owns; throws Error(ConfigInvalid) otherwise (another
/// user's directory, or one others could write into, could hold a planted pairings.json).
void check_state_dir(const std::filesystem::path& dir);

}  // namespace kyso::agent
