// The local TLS check: the trust of the CA behind wss://127.0.0.1, as the installer's
// kyso-local-tls reports it.

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "doctor.hpp"

namespace kyso::cli::doctor {

// The local CA behind wss://127.0.0.1: what the installer's kyso-local-tls says of its trust.
void check_local_tls(Checks& out, const Options& o) {
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
  // Each desktop user has their own certificate; one made after installation has none until
  // kyso-local-tls install runs again (kyso-local-tls.path does it when /home changes).
  for (const auto& u : j.value("users", nlohmann::json::array())) {
    if (u.value("status", "") != "missing") continue;
    const std::string name = u.value("name", "");
    out.push_back({"tls", Status::Warn,
                   "Người dùng " + name +
                       " chưa có chứng thư wss riêng: agent của họ không bật được wss. Hãy chạy: "
                       "sudo kyso-local-tls install",
                   "User " + name +
                       " has no wss certificate of their own: their agent cannot serve wss. Run: "
                       "sudo kyso-local-tls install",
                   u});
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

}  // namespace kyso::cli::doctor
