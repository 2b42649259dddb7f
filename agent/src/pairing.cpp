#include "kyso/agent/pairing.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"

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
  // Written aside and renamed: a crash never leaves half a file; only this user reads it.
  if (!platform::replace_file_privately(file_, text)) {
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
  return platform::user_state_dir();
}

void check_state_dir(const std::filesystem::path& dir) {
  platform::prepare_private_dir(dir);
}

}  // namespace kyso::agent
