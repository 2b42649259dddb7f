// kyso doctor's checks: what stands between this PC and signing, explained in Vietnamese and
// English.

#include "kyso/config/doctor.hpp"

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "kyso/config/agent_config.hpp"
#include "kyso/config/config_error.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::config {

std::string_view to_string(CheckStatus s) noexcept {
  switch (s) {
    case CheckStatus::Ok:
      return "ok";
    case CheckStatus::Warn:
      return "warn";
    case CheckStatus::Fail:
      return "fail";
    case CheckStatus::Skip:
      break;
  }
  return "skip";
}

namespace {

using Status = CheckStatus;
using Check = DoctorCheck;

// An inventory is `lsusb` output or one "VID:PID" per line: the first vvvv:pppp on each line.
}  // namespace

std::vector<pkcs11::UsbDevice> read_usb_inventory(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::BadRequest, file + ": cannot read the USB inventory");
  static const std::regex id(R"(([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4}))");
  std::vector<pkcs11::UsbDevice> out;
  std::string line;
  std::uint8_t n = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, id)) continue;
    pkcs11::UsbDevice d;
    d.vendor_id = static_cast<std::uint16_t>(std::stoul(m[1].str(), nullptr, 16));
    d.product_id = static_cast<std::uint16_t>(std::stoul(m[2].str(), nullptr, 16));
    d.bus = 1;
    d.address = ++n;
    out.push_back(d);
  }
  return out;
}

namespace {

void check_usb(std::vector<Check>& out, const DoctorOptions& o,
               const std::vector<config::TokenProfile>& profiles) {
  const auto devices =
      o.usb_inventory.empty() ? pkcs11::list_usb_devices() : read_usb_inventory(o.usb_inventory);
  const auto table = config::to_known_tokens(profiles);
  const auto status = pkcs11::diagnose_usb(devices, table);
  if (status.empty()) {
    out.push_back({"usb",
                   Status::Warn,
                   "Không thấy token USB nào đã biết (đã quét " + std::to_string(devices.size()) +
                       " thiết bị). Hãy cắm token, hoặc token này chưa có trong bảng token.",
                   "No known USB token seen (" + std::to_string(devices.size()) +
                       " devices scanned). Plug in the token, or it is not in the token table.",
                   {{"devices", devices.size()}}});
    return;
  }
  for (const auto& s : status) {
    nlohmann::json j = s;
    out.push_back({"usb", s.module ? Status::Ok : Status::Fail, s.hint_vi, s.hint_en, j});
  }
}

void check_modules(std::vector<Check>& out, pkcs11::Library& lib) {
  for (const auto& m : lib.modules()) {
    nlohmann::json j{
        {"path", m.path}, {"source", m.source}, {"loaded", m.loaded}, {"error", m.error}};
    if (m.loaded) {
      out.push_back({"module", Status::Ok,
                     "Đã nạp thư viện " + m.path + " (" + m.description + ").",
                     "Module " + m.path + " loaded (" + m.description + ").", j});
    } else {
      out.push_back(
          {"module", Status::Fail,
           "Không nạp được thư viện " + m.path + ": " + m.error +
               ". Hãy cài lại phần mềm của token hoặc bỏ đường dẫn này khỏi cấu hình.",
           "Module " + m.path + " failed to load: " + m.error +
               ". Reinstall the token's software or remove this path from the configuration.",
           j});
    }
  }
}

void check_tokens_and_certificates(std::vector<Check>& out, pkcs11::Library& lib, int expiry_days) {
  std::vector<std::shared_ptr<pkcs11::Token>> tokens;
  try {
    tokens = lib.tokens();
  } catch (const Error& e) {
    out.push_back({"token",
                   Status::Fail,
                   std::string(e.message(Language::Vi)),
                   std::string(e.message(Language::En)),
                   {{"error", e.detail()}}});
    return;
  }
  if (tokens.empty()) {
    out.push_back({"token", Status::Warn,
                   std::string(message(ErrorCode::TokenNotFound, Language::Vi)),
                   std::string(message(ErrorCode::TokenNotFound, Language::En))});
  }
  const auto now = std::chrono::system_clock::now();
  const auto soon = now + std::chrono::hours(24) * expiry_days;
  for (const auto& t : tokens) {
    pkcs11::TokenInfo info;
    try {
      info = t->info();
    } catch (const Error& e) {
      out.push_back({"token",
                     Status::Fail,
                     std::string(e.message(Language::Vi)),
                     std::string(e.message(Language::En)),
                     {{"error", e.detail()}}});
      continue;
    }
    const std::string name = "«" + info.label + "» (serial " + info.serial + ")";
    Check c{"token", Status::Ok, "Token " + name + ": PIN bình thường.",
            "Token " + name + ": PIN OK.", info};
    if (info.pin_locked) {
      c = {
          "token", Status::Fail,
          "Token " + name +
              ": PIN đã bị khóa. Cán bộ CNTT cần mở khóa bằng SO PIN (kyso provision unblock-pin).",
          "Token " + name +
              ": the PIN is locked. IT must unblock it with the SO PIN (kyso provision "
              "unblock-pin).",
          info};
    } else if (!info.user_pin_initialized) {
      c = {"token", Status::Warn,
           "Token " + name + ": chưa đặt PIN người dùng (kyso provision unblock-pin).",
           "Token " + name + ": no user PIN set yet (kyso provision unblock-pin).", info};
    } else if (info.pin_final_try) {
      c = {"token", Status::Warn,
           "Token " + name + ": chỉ còn 1 lần nhập PIN. Nhập sai nữa token sẽ bị khóa.",
           "Token " + name + ": one PIN try left; one more wrong PIN locks the token.", info};
    } else if (info.pin_count_low) {
      c = {"token", Status::Warn, "Token " + name + ": đã nhập sai PIN gần đây; hãy cẩn thận.",
           "Token " + name + ": wrong PINs were entered recently; take care.", info};
    } else if (info.pin_to_be_changed) {
      c = {
          "token", Status::Warn,
          "Token " + name + ": cần đổi PIN trước khi ký (kyso provision change-pin).",
          "Token " + name + ": the PIN must be changed before signing (kyso provision change-pin).",
          info};
    }
    out.push_back(std::move(c));

    std::vector<Credential> creds;
    try {
      creds = t->credentials();
    } catch (const Error&) {
      continue;
    }
    for (const auto& cr : creds) {
      const std::string who = cr.cert.common_name + " (" + cr.id().substr(0, 16) + ")";
      const std::string until = to_iso8601(cr.cert.not_after).substr(0, 10);
      const auto days =
          std::chrono::duration_cast<std::chrono::hours>(cr.cert.not_after - now).count() / 24;
      nlohmann::json j{{"credential", cr.id()},
                       {"subject", cr.cert.subject},
                       {"token", info.label},
                       {"notAfter", to_iso8601(cr.cert.not_after)},
                       {"daysLeft", days}};
      if (cr.cert.not_after < now) {
        out.push_back(
            {"certificate", Status::Fail,
             "Chứng thư số của " + who + " đã hết hạn ngày " + until + ". Hãy xin cấp lại.",
             "The certificate of " + who + " expired on " + until + ". Ask the CA for a new one.",
             j});
      } else if (cr.cert.not_before > now) {
        out.push_back(
            {"certificate", Status::Warn,
             "Chứng thư số của " + who + " chưa đến ngày hiệu lực. Kiểm tra đồng hồ máy tính.",
             "The certificate of " + who + " is not valid yet. Check the computer's clock.", j});
      } else if (cr.cert.not_after < soon) {
        out.push_back({"certificate", Status::Warn,
                       "Chứng thư số của " + who + " hết hạn ngày " + until + " (còn " +
                           std::to_string(days) + " ngày). Hãy gia hạn sớm.",
                       "The certificate of " + who + " expires on " + until + " (" +
                           std::to_string(days) + " days left). Renew it soon.",
                       j});
      } else {
        out.push_back({"certificate", Status::Ok,
                       "Chứng thư số của " + who + " còn hiệu lực đến " + until + ".",
                       "The certificate of " + who + " is valid until " + until + ".", j});
      }
    }
  }
}

std::uint16_t check_config(std::vector<Check>& out, const DoctorOptions& o) {
  if (o.config.empty()) return config::kDefaultAgentPort;
  try {
    const auto c = config::load_agent_config(o.config);
    out.push_back({"config",
                   Status::Ok,
                   "Tệp cấu hình " + o.config + " hợp lệ.",
                   "Configuration " + o.config + " is valid.",
                   {{"file", o.config}, {"port", c.port}, {"allowedOrigins", c.allowed_origins}}});
    return c.port;
  } catch (const config::ConfigError& e) {
    out.push_back(
        {"config",
         Status::Fail,
         e.located(Language::Vi),
         e.located(Language::En),
         {{"file", e.file()}, {"line", e.line()}, {"column", e.column()}, {"key", e.key()}}});
  }
  return config::kDefaultAgentPort;
}

// The process listening on TCP `port` (IPv4 or IPv6), from /proc: its socket inode in
// /proc/net/tcp{,6}, then the /proc/<pid>/fd link naming that socket. Only processes this user
// may inspect are found (another user's process shows as unknown).
struct Listener {
  long pid = 0;
  std::string name;
};

std::optional<Listener> who_listens(std::uint16_t port) {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      const auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::stoul(local.substr(colon + 1), nullptr, 16) == port)
        inodes.insert("socket:[" + inode + "]");
    }
  }
  if (inodes.empty()) return std::nullopt;
  std::error_code ec;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fd_ec;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      const auto target = std::filesystem::read_symlink(fd.path(), link_ec);
      if (!link_ec && inodes.contains(target.string())) {
        std::string name;
        std::getline(std::ifstream(proc.path() / "comm"), name);
        return Listener{std::stol(pid), name};
      }
    }
  }
  return Listener{};
}

// Whether the agent listens on its port (or a fallback), and if another program holds it.
void check_agent_port(std::vector<Check>& out, std::uint16_t port) {
  for (std::uint16_t p = port; p <= port + config::kAgentPortFallbacks; ++p) {
    const auto l = who_listens(p);
    if (!l) continue;
    const std::string ps = std::to_string(p);
    nlohmann::json j{{"port", p}, {"listening", true}, {"pid", l->pid}, {"process", l->name}};
    if (l->name == "kyso-agent") {
      out.push_back(
          {"agent", Status::Ok,
           "Kyso agent đang chạy ở cổng " + ps + " (pid " + std::to_string(l->pid) + ").",
           "The Kyso agent is running on port " + ps + " (pid " + std::to_string(l->pid) + ").",
           j});
      return;
    }
    const std::string who =
        l->name.empty() ? std::string("?") : l->name + " (pid " + std::to_string(l->pid) + ")";
    out.push_back({"agent", Status::Warn,
                   "Cổng " + ps + " đang bị chương trình khác chiếm: " + who +
                       ". Kyso agent sẽ dùng cổng dự phòng.",
                   "Port " + ps + " is held by another program: " + who +
                       ". The Kyso agent falls back to the next port.",
                   j});
  }
  const std::string ps = std::to_string(port);
  out.push_back({"agent",
                 Status::Warn,
                 "Kyso agent chưa chạy (không có gì nghe ở cổng " + ps +
                     "). Hãy chạy: systemctl --user start kyso-agent",
                 "The Kyso agent is not running (nothing listens on port " + ps +
                     "). Run: systemctl --user start kyso-agent",
                 {{"port", port}, {"listening", false}}});
}

// The local CA behind wss://127.0.0.1: what the installer's kyso-local-tls says of its trust.
void check_local_tls(std::vector<Check>& out, const DoctorOptions& o) {
  std::string tool = o.local_tls;
  if (tool.empty()) {
    for (const char* p : {"/usr/sbin/kyso-local-tls", "/usr/local/sbin/kyso-local-tls"}) {
      std::error_code ec;
      if (std::filesystem::exists(p, ec)) tool = p;
    }
  }
  std::error_code ec;
  if (tool.empty() || !std::filesystem::exists(tool, ec)) {
    out.push_back({"tls",
                   Status::Skip,
                   "Chưa cài kyso-local-tls: bỏ qua kiểm tra chứng thư wss cục bộ.",
                   "kyso-local-tls is not installed: the local wss certificate was not checked.",
                   {{"tool", tool}}});
    return;
  }
  // The path is ours or IT's (not from a web page); quoted for the shell all the same.
  std::string quoted = "'";
  for (char c : tool) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  std::unique_ptr<FILE, decltype(&::pclose)> pipe(
      ::popen((quoted + " status --json 2>/dev/null").c_str(), "r"), &::pclose);
  std::string text;
  if (pipe) {
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0) text.append(buf.data(), n);
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    out.push_back({"tls",
                   Status::Fail,
                   tool + " status --json không trả lời được.",
                   tool + " status --json gave no usable answer.",
                   {{"tool", tool}}});
    return;
  }
  if (!j.value("installed", false)) {
    out.push_back(
        {"tls", Status::Warn,
         "Chưa tạo chứng thư wss cục bộ: trình duyệt (nhất là Safari) sẽ không kết nối được qua "
         "wss. "
         "Hãy chạy: sudo kyso-local-tls install",
         "The local wss certificate is not set up: browsers (Safari above all) cannot connect "
         "over wss. Run: sudo kyso-local-tls install",
         j});
    return;
  }
  if (j.contains("agentCertificate") && j["agentCertificate"].value("expiresWithin30Days", false)) {
    out.push_back(
        {"tls", Status::Warn,
         "Chứng thư wss của agent sắp hết hạn. Hãy chạy: sudo kyso-local-tls install",
         "The agent's wss certificate expires within 30 days. Run: sudo kyso-local-tls install",
         j["agentCertificate"]});
  }
  for (const auto& t : j.value("trust", nlohmann::json::array())) {
    const std::string kind = t.value("kind", "");
    const std::string path = t.value("path", "");
    const std::string where = kind == "nssdb"    ? "NSS (Firefox/Chrome) " + path
                              : kind == "system" ? "system store " + path
                                                 : path;
    const std::string where_vi = kind == "nssdb"    ? "kho NSS (Firefox/Chrome) " + path
                                 : kind == "system" ? "kho hệ thống " + path
                                                    : path;
    if (t.value("status", "") == "ok") {
      out.push_back({"tls", Status::Ok, "CA cục bộ được tin cậy trong " + where_vi + ".",
                     "The local CA is trusted in the " + where + ".", t});
    } else {
      out.push_back({"tls", Status::Fail,
                     "CA cục bộ chưa được tin cậy trong " + where_vi +
                         ". Hãy chạy: kyso-local-tls user-trust (hoặc sudo kyso-local-tls install)",
                     "The local CA is not trusted in the " + where +
                         ". Run: kyso-local-tls user-trust (or sudo kyso-local-tls install)",
                     t});
    }
  }
}

}  // namespace

std::vector<DoctorCheck> run_doctor(pkcs11::Library& lib, const DoctorOptions& o) {
  std::vector<Check> checks;
  const auto profiles =
      o.profiles.empty() ? default_token_profiles() : load_token_profiles(o.profiles);
  const std::uint16_t port = check_config(checks, o);
  check_usb(checks, o, profiles);
  check_modules(checks, lib);
  check_tokens_and_certificates(checks, lib, o.expiry_days);
  check_local_tls(checks, o);
  check_agent_port(checks, port);
  return checks;
}

}  // namespace kyso::config
