// The agent checks: its configuration, who listens on its port and what answers there, and the
// documents module it loads for xml and pdf items.

#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "doctor.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/http.hpp"
#include "kyso/firmware_config/config_error.hpp"
#include "kyso/formats/documents.hpp"

namespace kyso::cli::doctor {

using firmware_config::AgentConfig;

std::optional<AgentConfig> check_config(Checks& out, const Options& o) {
  if (o.config.empty()) return std::nullopt;
  try {
    auto c = firmware_config::load_agent_config(o.config);
    out.push_back({"config",
                   Status::Ok,
                   "Tệp cấu hình " + o.config + " hợp lệ.",
                   "Configuration " + o.config + " is valid.",
                   {{"file", o.config}, {"port", c.port}, {"allowedOrigins", c.allowed_origins}}});
    return c;
  } catch (const firmware_config::ConfigError& e) {
    out.push_back(
        {"config",
         Status::Fail,
         e.located(Language::Vi),
         e.located(Language::En),
         {{"file", e.file()}, {"line", e.line()}, {"column", e.column()}, {"key", e.key()}}});
  }
  return std::nullopt;
}

// The agent signs xml and pdf items with kyso-formats-documents.so, loaded on the first one:
// load it here the same way (the configuration's formats_module, $KYSO_FORMATS_MODULE, next to
// this program, the installed libdir/kyso), so a broken install shows before a teacher signs.
void check_documents_module(Checks& out, const std::optional<AgentConfig>& agent) {
  const std::string configured = agent ? agent->formats_module : std::string();
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : formats::documents_module_candidates(configured)) {
    candidates.push_back(c.string());
  }
  std::filesystem::path path;
  try {
    formats::load_documents_module(configured, &path);
    out.push_back({"documents",
                   Status::Ok,
                   "Phần ký văn bản XML/PDF của kyso-agent nạp được (" + path.string() + ").",
                   "kyso-agent's XML/PDF signing part loads (" + path.string() + ").",
                   {{"path", path.string()}, {"candidates", candidates}}});
  } catch (const Error& e) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    const bool agent_here = !ec && std::filesystem::exists(self.parent_path() / "kyso-agent", ec);
    if (path.empty() && configured.empty() && !agent_here) {
      out.push_back({"documents",
                     Status::Skip,
                     "kyso-agent chưa được cài trên máy này: bỏ qua phần ký văn bản XML/PDF.",
                     "kyso-agent is not installed on this PC: its XML/PDF signing part is not "
                     "checked.",
                     {{"candidates", candidates}}});
      return;
    }
    out.push_back(
        {"documents",
         Status::Fail,
         "kyso-agent sẽ không ký được văn bản XML/PDF (lỗi FORMATS_UNAVAILABLE): " + e.detail() +
             ". Hãy cài lại gói kyso-agent hoặc sửa formats_module trong cấu hình; ký "
             "mã băm và CMS vẫn dùng được.",
         "kyso-agent cannot sign XML/PDF documents (error FORMATS_UNAVAILABLE): " + e.detail() +
             ". Reinstall the kyso-agent package or fix formats_module in the "
             "configuration; hash and CMS signing still work.",
         {{"path", path.string()}, {"error", e.detail()}, {"candidates", candidates}}});
  }
}

namespace {

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

}  // namespace

std::optional<nlohmann::json> probe_json(const std::string& host, std::uint16_t port, bool tls,
                                         const std::string& path, std::string& why) {
  http::Options o;
  o.connect_timeout = std::chrono::seconds(3);
  o.request_timeout = std::chrono::seconds(3);
  o.verify_peer = false;  // a public status; the tls check judges the certificate
  o.body_limit = 65536;
  o.user_agent = "kyso-doctor";
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  try {
    http::Client client(
        std::string(tls ? "https" : "http") + "://" + h + ":" + std::to_string(port), o);
    const auto res = client.request("GET", path, {}, {}, {}, true);
    if (res.status != 200) {
      why = "unexpected answer: HTTP " + std::to_string(res.status);
      return std::nullopt;
    }
    auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (!j.is_object()) {
      why = "the answer is not a JSON object";
      return std::nullopt;
    }
    return j;
  } catch (const Error& e) {
    why = e.detail();
    return std::nullopt;
  }
}

namespace {

// What the program on 127.0.0.1:`port` answers to `GET /` (the agent's status JSON), over TLS
// when the agent serves wss. nullopt with `why` when no answer.
std::optional<nlohmann::json> probe_agent(std::uint16_t port, bool tls, std::string& why) {
  auto j = probe_json("127.0.0.1", port, tls, "/", why);
  if (j && j->value("name", "") != "kyso-agent") {
    why = "the answer is not the Kyso agent's status";
    return std::nullopt;
  }
  return j;
}

}  // namespace

void check_agent_port(Checks& out, std::uint16_t port, bool tls) {
  for (std::uint16_t p = port; p <= port + firmware_config::kAgentPortFallbacks; ++p) {
    const auto l = who_listens(p);
    if (!l) continue;
    const std::string ps = std::to_string(p);
    nlohmann::json j{{"port", p}, {"listening", true}, {"pid", l->pid}, {"process", l->name}};
    std::string why;
    // Another named program is not asked (it may hold the connection without answering).
    std::optional<nlohmann::json> status;
    if (l->name == "kyso-agent" || l->name.empty()) status = probe_agent(p, tls, why);
    if (status) j["status"] = *status;
    if (l->name == "kyso-agent" || (l->name.empty() && status)) {
      const std::string pid = l->pid > 0 ? " (pid " + std::to_string(l->pid) + ")" : "";
      if (!status) {
        j["error"] = why;
        out.push_back({"agent", Status::Fail,
                       "Kyso agent giữ cổng " + ps + pid + " nhưng không trả lời (" + why +
                           "). Hãy khởi động lại: systemctl --user restart kyso-agent",
                       "The Kyso agent holds port " + ps + pid + " but does not answer (" + why +
                           "). Restart it: systemctl --user restart kyso-agent",
                       j});
        return;
      }
      const std::string version = status->value("version", std::string("?"));
      const std::string scheme = status->value("tls", false) ? "wss" : "ws";
      out.push_back({"agent", Status::Ok,
                     "Kyso agent " + version + " đang chạy và trả lời ở " + scheme +
                         "://127.0.0.1:" + ps + pid + ".",
                     "The Kyso agent " + version + " is running and answers at " + scheme +
                         "://127.0.0.1:" + ps + pid + ".",
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

}  // namespace kyso::cli::doctor
