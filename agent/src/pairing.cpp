#include "kyso/agent/pairing.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso::agent {

PairingStore::PairingStore(std::filesystem::path file) : file_(std::move(file)) {}

std::vector<Pairing> PairingStore::load() const {
  std::ifstream in(file_);
  if (!in) return {};
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  std::vector<Pairing> out;
  if (!j.is_object() || !j.contains("pairings") || !j["pairings"].is_array()) return out;
  for (const auto& p : j["pairings"]) {
    if (!p.is_object() || !p.contains("origin") || !p["origin"].is_string()) continue;
    out.push_back(
        {normalize_origin(p["origin"].get<std::string>()), p.value("pairedAt", std::string())});
  }
  return out;
}

void PairingStore::save(const std::vector<Pairing>& pairings) const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : pairings) arr.push_back({{"origin", p.origin}, {"pairedAt", p.paired_at}});
  const std::string text = nlohmann::json{{"version", 1}, {"pairings", arr}}.dump(2) + "\n";
  std::filesystem::create_directories(file_.parent_path());
  // Written aside and renamed: a crash never leaves half a file; 0600: only this user.
  const std::filesystem::path tmp = file_.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorCode::ConfigInvalid, "cannot write " + tmp.string());
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file_.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::ConfigInvalid, "cannot write " + file_.string());
  }
}

bool PairingStore::contains(std::string_view origin) const {
  const std::string o = normalize_origin(origin);
  const std::lock_guard lock(mutex_);
  const auto all = load();
  return std::ranges::any_of(all, [&](const Pairing& p) { return p.origin == o; });
}

void PairingStore::add(std::string_view origin) {
  std::string o = normalize_origin(origin);
  const std::lock_guard lock(mutex_);
  auto all = load();
  if (std::ranges::any_of(all, [&](const Pairing& p) { return p.origin == o; })) return;
  all.push_back({std::move(o), to_iso8601(std::chrono::system_clock::now())});
  save(all);
}

bool PairingStore::remove(std::string_view origin) {
  const std::string o = normalize_origin(origin);
  const std::lock_guard lock(mutex_);
  auto all = load();
  const auto n = std::erase_if(all, [&](const Pairing& p) { return p.origin == o; });
  if (n == 0) return false;
  save(all);
  return true;
}

std::vector<Pairing> PairingStore::list() const {
  const std::lock_guard lock(mutex_);
  return load();
}

std::string normalize_origin(std::string_view origin) {
  std::string out(origin);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!origin_well_formed(out)) return out;
  const auto sep = out.find("://");
  const std::string_view scheme = std::string_view(out).substr(0, sep);
  // The port's colon comes after the host, which for IPv6 ends with ']'.
  const auto host_end = out.find(']', sep + 3);
  const auto colon = out.find(':', host_end == std::string::npos ? sep + 3 : host_end);
  if (colon == std::string::npos) return out;
  unsigned value = 0;  // origin_well_formed checked it is 1..65535
  for (char c : std::string_view(out).substr(colon + 1)) {
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  const bool default_port = (scheme == "https" && value == 443) ||
                            (scheme == "http" && value == 80) ||
                            (scheme == "wss" && value == 443) || (scheme == "ws" && value == 80);
  out.resize(colon);
  if (!default_port) out += ":" + std::to_string(value);
  return out;
}

bool origin_well_formed(std::string_view origin) {
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  const std::string_view scheme = origin.substr(0, sep);
  const std::string_view rest = origin.substr(sep + 3);
  if (rest.empty() || rest.size() > 253 + 7) return false;
  if (!std::ranges::all_of(scheme, [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; })) {
    return false;
  }
  if (!std::ranges::all_of(rest, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == ':' || c == '[' || c == ']';
      })) {
    return false;
  }
  // A port, when present, is 1..65535 (after the host, which for IPv6 ends with ']').
  const auto host_end = rest.starts_with('[') ? rest.find(']') : 0;
  if (host_end == std::string_view::npos) return false;
  const auto colon = rest.find(':', host_end);
  if (colon == std::string_view::npos) return true;
  const std::string_view port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::ranges::all_of(port, [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  unsigned value = 0;
  for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
  return value >= 1 && value <= 65535;
}

bool origin_pairable(std::string_view origin) {
  if (!origin_well_formed(origin)) return false;
  if (origin.starts_with("https://")) return true;
  if (!origin.starts_with("http://")) return false;
  std::string_view host = origin.substr(7);
  if (host.starts_with("[::1]")) {
    host = host.substr(5);
  } else {
    const auto colon = host.find(':');
    const std::string_view name = host.substr(0, colon);
    if (name != "localhost" && name != "127.0.0.1") return false;
    host = colon == std::string_view::npos ? std::string_view() : host.substr(colon);
  }
  return host.empty() || host.front() == ':';
}

std::filesystem::path default_state_dir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x == '/') {
    return std::filesystem::path(x) / "kyso";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::filesystem::path(home) / ".local" / "share" / "kyso";
  }
  // No HOME (a service started without one): the user's home from the password database, never
  // a shared directory such as /tmp where another user could have planted pairings.json.
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr ||
      pw.pw_dir == nullptr || *pw.pw_dir != '/') {
    throw Error(ErrorCode::ConfigInvalid,
                "HOME is not set and user " + std::to_string(::getuid()) +
                    " has no home directory in the password database; give --state-dir");
  }
  return std::filesystem::path(pw.pw_dir) / ".local" / "share" / "kyso";
}

void check_state_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error(ErrorCode::ConfigInvalid,
                "cannot create the state directory " + dir.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::ConfigInvalid,
                "the state directory " + dir.string() + " is not a directory");
  }
  if (st.st_uid != ::getuid()) {
    throw Error(ErrorCode::ConfigInvalid, "the state directory " + dir.string() +
                                              " belongs to uid " + std::to_string(st.st_uid) +
                                              ", not to this user (" + std::to_string(::getuid()) +
                                              "); give a directory of your own (--state-dir)");
  }
  if ((st.st_mode & 07777) != 0700) {
    // Ours: nobody else should read the audit log nor write pairings.json.
    if (::chmod(dir.c_str(), 0700) != 0 || ::stat(dir.c_str(), &st) != 0 ||
        (st.st_mode & 07777) != 0700) {
      throw Error(ErrorCode::ConfigInvalid,
                  "the state directory " + dir.string() + " must have mode 0700 (chmod 700 it)");
    }
  }
}

}  // namespace kyso::agent
