#include "browser_policy.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "kyso/core/error.hpp"
#include "kyso/core/text.hpp"

namespace kyso::cli::browser_policy {
namespace fs = std::filesystem;

const std::vector<Browser>& browsers() {
  static const std::vector<Browser> all{
      {"chromium",
       "Chromium",
       "/etc/chromium/policies/managed",
       {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"}},
      {"chrome",
       "Google Chrome",
       "/etc/opt/chrome/policies/managed",
       {"/opt/google/chrome/chrome", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"}},
      {"edge",
       "Microsoft Edge",
       "/etc/opt/edge/policies/managed",
       {"/opt/microsoft/msedge/msedge", "/usr/bin/microsoft-edge",
        "/usr/bin/microsoft-edge-stable"}},
  };
  return all;
}

fs::path under(const fs::path& root, const fs::path& absolute) {
  return root / absolute.relative_path();
}

nlohmann::json policy_for(const std::vector<std::string>& origins) {
  nlohmann::json doc = nlohmann::json::object();
  for (auto name : kPolicies) doc[std::string(name)] = origins;
  return doc;
}

std::string_view to_string(Action a) noexcept {
  switch (a) {
    case Action::Written:
      return "written";
    case Action::Unchanged:
      return "unchanged";
    case Action::Removed:
      return "removed";
    case Action::Absent:
      return "absent";
  }
  return "absent";
}

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw Error(ErrorCode::ConfigInvalid, "browser policy " + file.string() + ": " + what +
                                            " (kyso browser-policy needs root)");
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Replaces `file` with `text` by rename, so a browser starting meanwhile reads the old or the
/// new file, never half of one.
void write_atomically(const fs::path& file, const std::string& text) {
  std::error_code ec;
  // Directories made here get 0755 whatever the umask: Chromium ignores policy it cannot read.
  std::vector<fs::path> made;
  for (fs::path d = file.parent_path(); !d.empty() && !fs::exists(d, ec); d = d.parent_path()) {
    made.push_back(d);
    if (d == d.parent_path()) break;
  }
  fs::create_directories(file.parent_path(), ec);
  if (ec) fail(file.parent_path(), ec.message());
  for (const auto& d : made) {
    fs::permissions(d,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec,
                    ec);
  }
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) fail(tmp, "cannot write");
  }
  fs::permissions(tmp,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                      fs::perms::others_read,
                  ec);
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(file, "cannot replace");
  }
}

struct Url {
  std::string scheme, host, port;  // port empty: the scheme's default
};

/// Splits a normalized origin (`scheme://host[:port]`).
Url parse_origin(std::string_view origin) {
  Url u;
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos) return u;
  u.scheme = ascii_lower(origin.substr(0, sep));
  std::string_view rest = origin.substr(sep + 3);
  const auto colon = rest.rfind(':');
  const auto bracket = rest.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    u.port = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
  }
  u.host = ascii_lower(rest);
  if (u.port.empty()) u.port = u.scheme == "https" ? "443" : u.scheme == "http" ? "80" : "";
  return u;
}

}  // namespace

bool pattern_matches(std::string_view pattern, std::string_view origin) {
  const Url o = parse_origin(origin);
  if (o.scheme.empty() || o.host.empty()) return false;
  std::string_view p = pattern;
  while (!p.empty() && std::isspace(static_cast<unsigned char>(p.front()))) p.remove_prefix(1);
  while (!p.empty() && std::isspace(static_cast<unsigned char>(p.back()))) p.remove_suffix(1);
  if (p == "*") return true;
  if (const auto sep = p.find("://"); sep != std::string_view::npos) {
    const std::string scheme = ascii_lower(p.substr(0, sep));
    if (scheme != "*" && scheme != o.scheme) return false;
    p.remove_prefix(sep + 3);
  }
  if (const auto slash = p.find('/'); slash != std::string_view::npos) {
    const std::string_view path = p.substr(slash);
    if (path != "/" && path != "/*") return false;
    p = p.substr(0, slash);
  }
  std::string_view port;
  const auto colon = p.rfind(':');
  const auto bracket = p.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    port = p.substr(colon + 1);
    p = p.substr(0, colon);
  }
  if (!port.empty() && port != "*" && port != o.port) return false;
  std::string host = ascii_lower(p);
  if (host == "*") return true;
  if (host.starts_with("[*.]")) {
    const std::string domain = host.substr(4);
    return o.host == domain || (o.host.size() > domain.size() && o.host.ends_with("." + domain));
  }
  if (host.starts_with('.')) host.erase(0, 1);  // URL-blocklist style: this host only
  return !host.empty() && host == o.host;
}

std::vector<Written> write_files(const std::vector<std::string>& origins, const fs::path& root) {
  if (origins.empty()) return remove_files(root);
  const std::string text = policy_for(origins).dump(2) + "\n";
  std::vector<Written> out;
  for (const auto& b : browsers()) {
    const fs::path file = under(root, b.policy_dir) / kFileName;
    std::error_code ec;
    if (fs::is_regular_file(file, ec) && read_file(file) == text) {
      out.push_back({&b, file, Action::Unchanged});
      continue;
    }
    write_atomically(file, text);
    out.push_back({&b, file, Action::Written});
  }
  return out;
}

std::vector<Written> remove_files(const fs::path& root) {
  std::vector<Written> out;
  for (const auto& b : browsers()) {
    const fs::path file = under(root, b.policy_dir) / kFileName;
    std::error_code ec;
    const bool removed = fs::remove(file, ec);
    if (ec) fail(file, ec.message());
    out.push_back({&b, file, removed ? Action::Removed : Action::Absent});
  }
  return out;
}

std::vector<Coverage> coverage(const std::vector<std::string>& origins, const fs::path& root) {
  std::vector<Coverage> out;
  for (const auto& b : browsers()) {
    Coverage c;
    c.browser = &b;
    std::error_code ec;
    c.installed = std::ranges::any_of(
        b.executables, [&](const fs::path& e) { return fs::exists(under(root, e), ec); });
    // Chromium reads every *.json file in the directory, in name order; a later file's value of a
    // policy replaces an earlier one's (lists are not merged).
    std::vector<fs::path> files;
    const fs::path dir = under(root, b.policy_dir);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".json" && it->is_regular_file(ec)) files.push_back(it->path());
    }
    std::ranges::sort(files);
    std::map<std::string, std::pair<fs::path, std::vector<std::string>>> effective;
    for (const auto& f : files) {
      nlohmann::json doc = nlohmann::json::parse(read_file(f), nullptr, false);
      if (!doc.is_object()) {
        c.problems_en.push_back(f.string() + " is not valid JSON: the browser ignores it");
        c.problems_vi.push_back(f.string() + " không phải JSON hợp lệ: trình duyệt bỏ qua tệp này");
        continue;
      }
      for (auto name : kPolicies) {
        const auto it = doc.find(std::string(name));
        if (it == doc.end()) continue;
        std::vector<std::string> patterns;
        if (it->is_array()) {
          for (const auto& v : *it)
            if (v.is_string()) patterns.push_back(v.get<std::string>());
        }
        effective[std::string(name)] = {f, std::move(patterns)};
      }
    }
    for (auto name : kPolicies) {
      const auto it = effective.find(std::string(name));
      const std::string from = it == effective.end() ? "" : it->second.first.string();
      c.sources.emplace_back(std::string(name), from);
      const fs::path ours = dir / kFileName;
      if (it != effective.end() && it->second.first != ours && fs::exists(ours, ec)) {
        c.problems_en.push_back(std::string(name) + " comes from " + from +
                                ", which overrides Kyso's " + ours.string());
        c.problems_vi.push_back(std::string(name) + " lấy từ " + from +
                                ", tệp này ghi đè tệp của Kyso " + ours.string());
      }
    }
    for (const auto& origin : origins) {
      const bool ok = std::ranges::any_of(effective, [&](const auto& kv) {
        return std::ranges::any_of(
            kv.second.second, [&](const std::string& p) { return pattern_matches(p, origin); });
      });
      (ok ? c.covered : c.uncovered).push_back(origin);
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace kyso::cli::browser_policy
