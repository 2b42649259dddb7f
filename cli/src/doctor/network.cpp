// The network checks: this PC's clock against the configured TSA, and each remote signing
// service answering CSC `info`.

#include <array>
#include <chrono>

#include "doctor.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"
#include "kyso/formats/tsa.hpp"
#include "kyso/remote/csc_client.hpp"

namespace kyso::cli::doctor {

using firmware_config::AgentConfig;

namespace {

long long millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// "+12.3" seconds, for messages.
std::string seconds_text(long long ms) {
  const long long a = ms < 0 ? -ms : ms;
  return std::string(ms < 0 ? "-" : "+") + std::to_string(a / 1000) + "." +
         std::to_string((a % 1000) / 100);
}

}  // namespace

// This PC's clock against the TSA's: one RFC 3161 request over a random nonce-like datum,
// genTime compared with the local time halfway through the round trip. genTime has whole
// seconds (the demo and most TSAs), so about a second of the difference is rounding.
void check_tsa(Checks& out, const std::optional<AgentConfig>& agent, const Options& o) {
  if (!agent || agent->tsa_url.empty()) {
    out.push_back({"tsa",
                   Status::Skip,
                   "Chưa cấu hình TSA ([timestamp] tsa_url): bỏ qua kiểm tra đồng hồ.",
                   "No TSA configured ([timestamp] tsa_url): the clock was not checked.",
                   {{"configured", false}}});
    return;
  }
  const std::string& url = agent->tsa_url;
  kyso::formats::TsaConfig tc;
  tc.url = url;
  tc.timeout = o.network_timeout;
  // As when signing: the TSA's certificate checked against the agent's trust anchors.
  tc.trusted_pem = agent->trust_anchors;
  const Bytes datum = random_bytes(32);
  const auto sent_wall = std::chrono::system_clock::now();
  const auto sent = std::chrono::steady_clock::now();
  try {
    const auto ts = kyso::formats::request_timestamp(tc, datum);
    const auto rtt = std::chrono::steady_clock::now() - sent;
    const auto local =
        sent_wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(rtt / 2);
    const long long skew_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(ts.time - local).count();
    const long long limit_ms = o.max_clock_skew.count() * 1000;
    nlohmann::json j{{"url", url},
                     {"tsaTime", to_iso8601(ts.time)},
                     {"localTime", to_iso8601(local)},
                     {"skewMs", skew_ms},
                     {"maxSkewSeconds", o.max_clock_skew.count()},
                     {"roundTripMs", millis(rtt)}};
    const std::string off = seconds_text(skew_ms);
    if (skew_ms > limit_ms || skew_ms < -limit_ms) {
      out.push_back({"tsa", Status::Warn,
                     "Đồng hồ máy tính lệch " + off + " giây so với TSA " + url + " (cho phép " +
                         std::to_string(o.max_clock_skew.count()) +
                         " giây): giờ ký và kiểm tra hạn chứng thư sẽ sai. Hãy bật đồng bộ giờ "
                         "tự động (timedatectl set-ntp true).",
                     "The TSA " + url + " is " + off + " s off this computer's clock (limit " +
                         std::to_string(o.max_clock_skew.count()) +
                         " s): signing times and certificate validity checks will be wrong. "
                         "Turn on automatic time sync (timedatectl set-ntp true).",
                     j});
    } else {
      out.push_back({"tsa", Status::Ok,
                     "TSA " + url + " trả lời sau " + std::to_string(millis(rtt)) +
                         " ms; đồng hồ máy tính lệch " + off + " giây.",
                     "The TSA " + url + " answered in " + std::to_string(millis(rtt)) +
                         " ms; this computer's clock is " + off + " s off.",
                     j});
    }
  } catch (const Error& e) {
    out.push_back({"tsa",
                   Status::Fail,
                   "Không lấy được dấu thời gian từ TSA " + url + ": " +
                       std::string(e.message(Language::Vi)) + " (" + e.detail() +
                       "). Chữ ký có dấu thời gian sẽ không ký được.",
                   "No timestamp from the TSA " + url + ": " +
                       std::string(e.message(Language::En)) + " (" + e.detail() +
                       "). Signatures with a timestamp cannot be made.",
                   {{"url", url},
                    {"error", std::string(e.name())},
                    {"detail", e.detail()},
                    {"roundTripMs", millis(std::chrono::steady_clock::now() - sent)}}});
  }
}

// Each remote signing service answers CSC `info` over TLS, verified with its configured CA.
void check_remote(Checks& out, const std::optional<AgentConfig>& agent, const Options& o) {
  if (!agent || agent->remote.empty()) {
    out.push_back({"remote",
                   Status::Skip,
                   "Chưa cấu hình dịch vụ ký từ xa ([[remote]]).",
                   "No remote signing service configured ([[remote]]).",
                   {{"configured", false}}});
    return;
  }
  for (const auto& svc : agent->remote) {
    kyso::remote::ClientOptions co;
    co.base_url = svc.url;
    co.ca_file = svc.ca_file;
    co.connect_timeout = o.network_timeout;
    co.request_timeout = o.network_timeout;
    co.retries = 0;  // one honest attempt, timed
    co.unavailable_wait = std::chrono::milliseconds(0);
    const auto start = std::chrono::steady_clock::now();
    try {
      kyso::remote::CscClient client(co);
      const auto info = client.info();
      const auto rtt = millis(std::chrono::steady_clock::now() - start);
      const std::string specs = info.value("specs", std::string());
      const std::string server = info.value("name", std::string());
      out.push_back({"remote",
                     Status::Ok,
                     "Dịch vụ ký từ xa «" + svc.name + "» (" + svc.url + ") trả lời sau " +
                         std::to_string(rtt) + " ms (CSC " + specs + ", " + server + ").",
                     "Remote signing service «" + svc.name + "» (" + svc.url + ") answered in " +
                         std::to_string(rtt) + " ms (CSC " + specs + ", " + server + ").",
                     {{"name", svc.name},
                      {"url", svc.url},
                      {"specs", specs},
                      {"serverName", server},
                      {"roundTripMs", rtt}}});
    } catch (const Error& e) {
      const auto rtt = millis(std::chrono::steady_clock::now() - start);
      const bool tls = e.detail().find("certificate") != std::string::npos ||
                       e.detail().find("handshake") != std::string::npos;
      const std::string fix_vi =
          tls ? " Kiểm tra chứng thư TLS của dịch vụ và ca_file trong cấu hình."
              : " Kiểm tra mạng, địa chỉ url và dịch vụ có đang chạy không.";
      const std::string fix_en =
          tls ? " Check the service's TLS certificate and ca_file in the configuration."
              : " Check the network, the url and whether the service runs.";
      out.push_back({"remote",
                     Status::Fail,
                     "Không kết nối được dịch vụ ký từ xa «" + svc.name + "» (" + svc.url + "): " +
                         std::string(e.message(Language::Vi)) + " (" + e.detail() + ")." + fix_vi,
                     "Remote signing service «" + svc.name + "» (" + svc.url +
                         ") is not reachable: " + std::string(e.message(Language::En)) + " (" +
                         e.detail() + ")." + fix_en,
                     {{"name", svc.name},
                      {"url", svc.url},
                      {"error", std::string(e.name())},
                      {"detail", e.detail()},
                      {"roundTripMs", rtt}}});
    }
  }
}

}  // namespace kyso::cli::doctor
