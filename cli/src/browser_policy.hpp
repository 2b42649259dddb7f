#pragma once
// Browsers' managed policy for Local Network Access. Chromium-family browsers keep a public
// https site from reaching 127.0.0.1 (the agent) unless the user allowed it or an enterprise
// policy covers the site: `LocalNetworkAccessAllowedForUrls` and, since the permission was split,
// `LoopbackNetworkAllowedForUrls` (`LocalNetworkAllowedForUrls` does not cover loopback). Kyso
// writes both, from IT's allow-list (kyso-agent.toml `[origins] allowed`), as one JSON file in
// each browser's managed-policy directory, and tells whether each allow-listed origin is covered
// there (other files included: Chromium takes a policy from the last file, by name, that sets it).

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kyso::cli::browser_policy {

/// A Chromium-family browser on Linux: where it reads managed policy, how to tell it is installed.
struct Browser {
  std::string id;                    ///< "chromium", "chrome", "edge"
  std::string name;                  ///< "Chromium", "Google Chrome", "Microsoft Edge"
  std::filesystem::path policy_dir;  ///< absolute, e.g. /etc/chromium/policies/managed
  std::vector<std::filesystem::path> executables;  ///< any of them present: installed
};

/// Chromium (Debian), Google Chrome, Microsoft Edge.
const std::vector<Browser>& browsers();

/// The file Kyso owns in each policy directory.
inline constexpr std::string_view kFileName = "kyso-browser-policy.json";
/// The policies written (both: browsers before the split know only the first).
inline constexpr std::string_view kPolicies[] = {"LocalNetworkAccessAllowedForUrls",
                                                 "LoopbackNetworkAllowedForUrls"};

/// The policy document for these origins (normalized `https://host[:port]`).
nlohmann::json policy_for(const std::vector<std::string>& origins);

enum class Action { Written, Unchanged, Removed, Absent };
std::string_view to_string(Action a) noexcept;  ///< "written", "unchanged", "removed", "absent"

struct Written {
  const Browser* browser;
  std::filesystem::path file;  ///< under the root
  Action action;
};

/// Makes each browser's file say exactly `origins` (atomically, mode 0644, directories 0755),
/// under `root` ("/" for the machine). No origins: the files are removed, since an empty list
/// would still override another file's. Throws kyso::Error (IoError) when a file cannot be written.
std::vector<Written> write_files(const std::vector<std::string>& origins,
                                 const std::filesystem::path& root);

/// Removes Kyso's file from every browser's directory under `root`.
std::vector<Written> remove_files(const std::filesystem::path& root);

/// Whether a policy URL pattern (content-settings syntax: `*`, `[scheme://][[*.]]host[:port|:*]
/// [/path]`) matches an origin. Patterns with a path other than `/` or `/*` never match.
bool pattern_matches(std::string_view pattern, std::string_view origin);

/// What one browser's managed policy does for the allow-listed origins.
struct Coverage {
  const Browser* browser = nullptr;
  bool installed = false;
  std::vector<std::string> covered;    ///< origins a policy in effect lets reach loopback
  std::vector<std::string> uncovered;  ///< the others
  /// Problems a person should fix: unreadable or invalid JSON files (the browser ignores them),
  /// Kyso's file overridden by a later file that sets the same policy.
  std::vector<std::string> problems_en, problems_vi;
  /// The file each policy's value comes from (empty: none sets it).
  std::vector<std::pair<std::string, std::string>> sources;
};

/// Reads each browser's policy directory under `root` as the browser does (the last file by name
/// that sets a policy wins) and checks every origin.
std::vector<Coverage> coverage(const std::vector<std::string>& origins,
                               const std::filesystem::path& root);

/// `root` / `absolute` (an absolute path taken inside another root).
std::filesystem::path under(const std::filesystem::path& root,
                            const std::filesystem::path& absolute);

}  // namespace kyso::cli::browser_policy
