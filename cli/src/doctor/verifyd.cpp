// kyso doctor on a verification server: kyso-verifyd's profile, the validity of its trust
// anchors, and the service (and its seal) answering on its port.

#include <chrono>
#include <filesystem>

#include "doctor.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/firmware_config/config_error.hpp"
#include "kyso/firmware_config/verifyd_config.hpp"

namespace kyso::cli::doctor {
namespace {

// A certificate file the service relies on: expired is a failure (every validation would say
// INDETERMINATE), expiring within `days` a warning.
void check_certificate_file(Checks& out, const std::string& path, const char* what_vi,
                            const char* what_en, int days) {
  try {
    const auto now = std::chrono::system_clock::now();
    for (const auto& x : x509_read_file(path)) {
      const auto c = parse_certificate(x509_to_der(x.get()));
      const nlohmann::json j{
          {"file", path}, {"subject", c.subject}, {"notAfter", to_iso8601(c.not_after)}};
      if (c.not_after < now) {
        out.push_back({"verifyd", Status::Fail,
                       std::string(what_vi) + " " + c.common_name + " đã hết hạn (" + path + ").",
                       std::string(what_en) + " " + c.common_name + " has expired (" + path + ").",
                       j});
      } else if (c.not_after < now + std::chrono::hours(24) * days) {
        out.push_back({"verifyd", Status::Warn,
                       std::string(what_vi) + " " + c.common_name + " sắp hết hạn (" +
                           to_iso8601(c.not_after) + ").",
                       std::string(what_en) + " " + c.common_name + " expires soon (" +
                           to_iso8601(c.not_after) + ").",
                       j});
      }
    }
  } catch (const Error& e) {
    out.push_back({"verifyd",
                   Status::Fail,
                   std::string(what_vi) + ": không đọc được " + path,
                   std::string(what_en) + ": cannot read " + path,
                   {{"error", e.detail()}}});
  }
}

}  // namespace

void check_verifyd(Checks& out, const Options& o) {
  if (o.verifyd_config.empty()) return;
  firmware_config::VerifydConfig c;
  try {
    c = firmware_config::load_verifyd_config(o.verifyd_config);
  } catch (const firmware_config::ConfigError& e) {
    out.push_back({"verifyd",
                   Status::Fail,
                   "Cấu hình kyso-verifyd có lỗi: " + e.located(Language::Vi),
                   "kyso-verifyd's configuration is wrong: " + e.located(Language::En),
                   {{"file", e.file()}, {"line", e.line()}, {"key", e.key()}}});
    return;
  } catch (const Error& e) {
    out.push_back({"verifyd",
                   Status::Fail,
                   "Không đọc được cấu hình kyso-verifyd: " + e.detail(),
                   "Cannot read kyso-verifyd's configuration: " + e.detail(),
                   {{"file", o.verifyd_config}}});
    return;
  }
  for (const auto& a : c.anchors) {
    check_certificate_file(out, a, "Chứng thư gốc tin cậy", "Trust anchor", o.expiry_days);
  }
  const bool tls = !c.tls_cert_file.empty();
  // A service listening on every address answers on loopback too.
  const std::string host = c.listen_address == "0.0.0.0" || c.listen_address == "::"
                               ? std::string("127.0.0.1")
                               : c.listen_address;
  const std::string where = (tls ? "https://" : "http://") +
                            (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                            std::to_string(c.port) + "/health";
  std::string why;
  const auto health = c.port == 0 ? std::nullopt : probe_json(host, c.port, tls, "/health", why);
  nlohmann::json j{{"config", o.verifyd_config}, {"url", where}, {"anchors", c.anchors.size()}};
  if (!health) {
    j["error"] = why;
    out.push_back({"verifyd", Status::Fail,
                   "kyso-verifyd không trả lời ở " + where + " (" + why +
                       "). Xem: systemctl status kyso-verifyd; journalctl -u kyso-verifyd",
                   "kyso-verifyd does not answer at " + where + " (" + why +
                       "). See: systemctl status kyso-verifyd; journalctl -u kyso-verifyd",
                   j});
    return;
  }
  j["health"] = *health;
  const bool seal_ok = !c.seal || health->value("seal", false);
  out.push_back(
      {"verifyd", seal_ok ? Status::Ok : Status::Warn,
       "kyso-verifyd đang chạy ở " + where + " với " + std::to_string(c.anchors.size()) +
           " chứng thư gốc tin cậy" +
           (c.seal ? (seal_ok ? ", con dấu sẵn sàng." : ", nhưng con dấu chưa sẵn sàng.") : "."),
       "kyso-verifyd is running at " + where + " with " + std::to_string(c.anchors.size()) +
           " trust anchor(s)" +
           (c.seal ? (seal_ok ? ", its seal ready." : ", but its seal is not ready.") : "."),
       j});
}

}  // namespace kyso::cli::doctor
