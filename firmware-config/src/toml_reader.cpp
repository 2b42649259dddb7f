#include "toml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>
#include "kyso/core/platform.hpp"
#include "kyso/core/text.hpp"

namespace kyso::firmware_config::detail {
namespace {

std::uint32_t at_least_one(std::uint32_t v) {
  return v == 0 ? 1U : v;
}

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "true/false";
    case toml::node_type::array:
      return "a list";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date/time";
  }
}

}  // namespace

toml::table parse_toml_text(std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(name, at_least_one(e.source().begin.line),
                      at_least_one(e.source().begin.column), "",
                      "TOML syntax error: " + std::string(e.description()),
                      "sai cú pháp TOML: " + std::string(e.description()));
  }
}

toml::table parse_toml_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ConfigError(file.string(), 0, 0, "", "cannot open the file (missing or unreadable)",
                      "không mở được tệp (không tồn tại hoặc không có quyền đọc)");
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_toml_text(buf.str(), file.string());
}

Section::Section(std::string file, const toml::table& table, std::string path)
    : file_(std::move(file)),
      table_(&table),
      path_(std::move(path)),
      seen_(std::make_shared<std::set<std::string, std::less<>>>()) {}

std::string Section::dotted(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool Section::has(std::string_view key) const {
  return table_->get(key) != nullptr;
}

const toml::node* Section::node(std::string_view key) {
  seen_->emplace(key);
  return table_->get(key);
}

void Section::fail(std::string_view key, const std::string& what_en,
                   const std::string& what_vi) const {
  const toml::node* n = table_->get(key);
  const auto& src = n != nullptr ? n->source() : table_->source();
  throw ConfigError(file_, at_least_one(src.begin.line), at_least_one(src.begin.column),
                    key.empty() ? path_ : dotted(key), what_en, what_vi);
}

void Section::fail_at(std::string_view key, std::size_t index, const std::string& what_en,
                      const std::string& what_vi) const {
  const toml::node* n = table_->get(key);
  const toml::array* arr = n != nullptr ? n->as_array() : nullptr;
  if (arr == nullptr || index >= arr->size()) fail(key, what_en, what_vi);
  const auto& src = (*arr)[index].source();
  throw ConfigError(file_, at_least_one(src.begin.line), at_least_one(src.begin.column),
                    dotted(key) + "[" + std::to_string(index) + "]", what_en, what_vi);
}

void Section::fail_type(std::string_view key, const char* want_en, const char* want_vi) const {
  const toml::node* n = table_->get(key);
  fail(key, std::string("must be ") + want_en + ", not " + type_name(n->type()),
       std::string("phải là ") + want_vi);
}

std::optional<std::string> Section::string(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* v = n->as_string();
  if (v == nullptr) fail_type(key, "a string", "một chuỗi trong ngoặc kép");
  return v->get();
}

std::string Section::string_or(std::string_view key, std::string fallback) {
  auto v = string(key);
  return v ? std::move(*v) : std::move(fallback);
}

std::string Section::required_string(std::string_view key) {
  auto v = string(key);
  if (!v) fail(key, "is required", "bắt buộc phải có");
  if (v->empty()) fail(key, "must not be empty", "không được để trống");
  return std::move(*v);
}

std::optional<bool> Section::boolean(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* v = n->as_boolean();
  if (v == nullptr) fail_type(key, "true or false", "true hoặc false");
  return v->get();
}

std::optional<std::int64_t> Section::integer(std::string_view key, std::int64_t min,
                                             std::int64_t max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* v = n->as_integer();
  if (v == nullptr) fail_type(key, "an integer", "một số nguyên");
  const std::int64_t x = v->get();
  if (x < min || x > max) {
    const std::string range = std::to_string(min) + ".." + std::to_string(max);
    fail(key, std::to_string(x) + " is out of range " + range,
         std::to_string(x) + " nằm ngoài khoảng cho phép " + range);
  }
  return x;
}

std::optional<std::vector<std::string>> Section::strings(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* arr = n->as_array();
  if (arr == nullptr) fail_type(key, "a list of strings", "một danh sách chuỗi [\"...\", ...]");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto* s = (*arr)[i].as_string();
    if (s == nullptr) {
      fail_at(key, i, std::string("must be a string, not ") + type_name((*arr)[i].type()),
              "phải là một chuỗi trong ngoặc kép");
    }
    if (s->get().empty()) fail_at(key, i, "must not be empty", "không được để trống");
    out.push_back(s->get());
  }
  return out;
}

std::optional<Section> Section::table(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* t = n->as_table();
  if (t == nullptr) fail_type(key, "a table", "một bảng");
  return Section(file_, *t, dotted(key));
}

std::vector<Section> Section::tables(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return {};
  const auto* arr = n->as_array();
  if (arr == nullptr) fail_type(key, "an array of tables ([[...]])", "một danh sách bảng [[...]]");
  std::vector<Section> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto* t = (*arr)[i].as_table();
    if (t == nullptr) fail_at(key, i, "must be a table", "phải là một bảng");
    out.emplace_back(file_, *t, dotted(key) + "[" + std::to_string(i) + "]");
  }
  return out;
}

std::vector<std::string> Section::keys() const {
  std::vector<std::string> out;
  for (auto&& [k, v] : *table_) out.emplace_back(k.str());
  return out;
}

std::string Section::resolve(const std::string& given) const {
  std::string p = given;
  if (std::size_t at = p.find("%u"); at != std::string::npos) {
    const std::string user = platform::login_name();
    for (; at != std::string::npos; at = p.find("%u", at + user.size())) p.replace(at, 2, user);
  }
  std::filesystem::path path(p);
  if (p.starts_with("~/")) {
    if (const char* home = std::getenv("HOME"); home != nullptr)
      path = std::filesystem::path(home) / p.substr(2);
  }
  if (path.is_relative()) path = std::filesystem::path(file_).parent_path() / path;
  return path.lexically_normal().string();
}

std::optional<std::string> Section::file_path(std::string_view key, bool must_exist) {
  auto v = string(key);
  if (!v) return std::nullopt;
  if (v->empty()) fail(key, "must not be empty", "không được để trống");
  std::string p = resolve(*v);
  std::error_code ec;
  if (must_exist && !std::filesystem::exists(p, ec)) {
    fail(key, "file not found: " + p, "không tìm thấy tệp: " + p);
  }
  return p;
}

std::optional<std::vector<std::string>> Section::file_paths(std::string_view key, bool must_exist) {
  auto v = strings(key);
  if (!v) return std::nullopt;
  for (std::size_t i = 0; i < v->size(); ++i) {
    (*v)[i] = resolve((*v)[i]);
    std::error_code ec;
    if (must_exist && !std::filesystem::exists((*v)[i], ec)) {
      fail_at(key, i, "file not found: " + (*v)[i], "không tìm thấy tệp: " + (*v)[i]);
    }
  }
  return v;
}

void Section::finish() const {
  for (auto&& [k, v] : *table_) {
    if (seen_->contains(k.str())) continue;
    const auto& src = k.source().begin.line != 0 ? k.source() : v.source();
    throw ConfigError(file_, at_least_one(src.begin.line), at_least_one(src.begin.column),
                      dotted(k.str()), "unknown key (misspelt, or in the wrong [section]?)",
                      "khóa không hợp lệ (viết sai, hoặc đặt nhầm mục [...]?)");
  }
}

namespace {

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
}

// Splits "scheme://authority[rest]"; false when there is no scheme or authority.
bool split_url(std::string_view url, std::string& scheme, std::string& host, std::string& port,
               std::string& rest) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  scheme = ascii_lower(url.substr(0, sep));
  std::string_view tail = url.substr(sep + 3);
  const auto end = tail.find_first_of("/?#");
  std::string_view authority = tail.substr(0, end);
  rest = end == std::string_view::npos ? "" : std::string(tail.substr(end));
  if (authority.find('@') != std::string_view::npos) return false;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = ascii_lower(authority.substr(0, close + 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') return false;
    port = authority.empty() ? "" : std::string(authority.substr(1));
  } else {
    const auto colon = authority.rfind(':');
    host = ascii_lower(authority.substr(0, colon));
    port = colon == std::string_view::npos ? "" : std::string(authority.substr(colon + 1));
    if (host.empty() || !std::ranges::all_of(host, host_char) || host.starts_with('.') ||
        host.ends_with('.') || host.starts_with('-')) {
      return false;
    }
  }
  return !host.empty();
}

bool valid_port(const std::string& port, int& value) {
  if (port.empty() || port.size() > 5) return false;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc{} && p == port.data() + port.size() && value >= 1 && value <= 65535;
}

}  // namespace

std::optional<std::string> normalize_origin(std::string_view origin, std::string& why_en,
                                            std::string& why_vi) {
  std::string scheme, host, port, rest;
  if (origin == "*" || origin.find('*') != std::string_view::npos) {
    why_en = "wildcards are not allowed: list each origin";
    why_vi = "không được dùng ký tự đại diện *: hãy liệt kê từng địa chỉ";
    return std::nullopt;
  }
  if (!split_url(origin, scheme, host, port, rest)) {
    why_en = "'" + std::string(origin) + "' is not an origin of the form scheme://host[:port]";
    why_vi = "'" + std::string(origin) + "' không có dạng scheme://tên-máy[:cổng]";
    return std::nullopt;
  }
  if (scheme != "https" && scheme != "http") {
    why_en = "scheme must be https (or http), not '" + scheme + "'";
    why_vi = "giao thức phải là https (hoặc http), không phải '" + scheme + "'";
    return std::nullopt;
  }
  if (!rest.empty()) {
    why_en = "an origin has no path, query or trailing slash: remove '" + rest + "'";
    why_vi = "địa chỉ gốc (origin) không có đường dẫn hay dấu / ở cuối: hãy bỏ '" + rest + "'";
    return std::nullopt;
  }
  int port_value = 0;
  if (origin.substr(origin.find("://") + 3).find(':') != std::string_view::npos && port.empty() &&
      !host.starts_with('[')) {
    why_en = "empty port after ':'";
    why_vi = "thiếu số cổng sau dấu ':'";
    return std::nullopt;
  }
  if (!port.empty() && !valid_port(port, port_value)) {
    why_en = "port '" + port + "' must be a number 1..65535";
    why_vi = "cổng '" + port + "' phải là số từ 1 đến 65535";
    return std::nullopt;
  }
  std::string out = scheme + "://" + host;
  const bool default_port =
      (scheme == "https" && port_value == 443) || (scheme == "http" && port_value == 80);
  if (!port.empty() && !default_port) out += ":" + std::to_string(port_value);
  return out;
}

bool valid_http_url(std::string_view url, bool https_only) {
  std::string scheme, host, port, rest;
  if (!split_url(url, scheme, host, port, rest)) return false;
  if (scheme != "https" && (https_only || scheme != "http")) return false;
  int v = 0;
  return port.empty() || valid_port(port, v);
}

// "host:port", "[::]:port" or "0.0.0.0:port"; port 0 takes any free port (tests, --port-file).
void read_listen(Section& s, std::string_view key, std::string& address, std::uint16_t& port_out) {
  const auto listen = s.string(key);
  if (!listen) return;
  const auto colon = listen->rfind(':');
  std::string host = colon == std::string::npos ? "" : listen->substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : listen->substr(colon + 1);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  int value = -1;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || ec != std::errc{} || p != port.data() + port.size() || value < 0 ||
      value > 65535) {
    s.fail(key,
           "must be \"address:port\" with a port 0..65535, e.g. \"0.0.0.0:8443\" or \"[::]:8443\"",
           "phải có dạng \"địa-chỉ:cổng\" với cổng từ 0 đến 65535, ví dụ \"0.0.0.0:8443\"");
  }
  // An IP address: the service binds exactly there (no name lookups at start).
  const bool ip = std::ranges::all_of(host, [](char ch) {
    return std::isxdigit(static_cast<unsigned char>(ch)) != 0 || ch == '.' || ch == ':';
  });
  if (!ip) {
    s.fail(key, "the address must be an IP address (0.0.0.0, 127.0.0.1, ::), not a name",
           "địa chỉ phải là địa chỉ IP (0.0.0.0, 127.0.0.1, ::), không phải tên miền");
  }
  address = host;
  port_out = static_cast<std::uint16_t>(value);
}

// A secret file must not be readable by group or others.
void check_private(const Section& s, std::string_view key, const std::string& path) {
  if (platform::readable_by_others(path)) {
    s.fail(key, path + " is readable by other users: chmod 600 it",
           path + " có thể bị người dùng khác đọc: hãy chmod 600");
  }
}

}  // namespace kyso::firmware_config::detail
