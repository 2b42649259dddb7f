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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kyso/config/agent_config.hpp"
#include "kyso/config/config_error.hpp"
#include "kyso/formats/documents.hpp"
#include "kyso/formats/tsa.hpp"
#include "kyso/pkcs11/usb.hpp"
#include "kyso/remote/csc_client.hpp"

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
    if (const auto* q = t->quirks()) {
      out.push_back(
          {"quirk", Status::Ok, "Token " + name + ": " + pkcs11::describe(*q, Language::Vi),
           "Token " + name + ": " + pkcs11::describe(*q, Language::En), nlohmann::json(*q)});
    }

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

std::optional<AgentConfig> check_config(std::vector<Check>& out, const DoctorOptions& o) {
  if (o.config.empty()) return std::nullopt;
  try {
    auto c = config::load_agent_config(o.config);
    out.push_back({"config",
                   Status::Ok,
                   "Tệp cấu hình " + o.config + " hợp lệ.",
                   "Configuration " + o.config + " is valid.",
                   {{"file", o.config}, {"port", c.port}, {"allowedOrigins", c.allowed_origins}}});
    return c;
  } catch (const config::ConfigError& e) {
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
void check_documents_module(std::vector<Check>& out, const std::optional<AgentConfig>& agent) {
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

long long millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// "+12.3" seconds, for messages.
std::string seconds_text(long long ms) {
  const long long a = ms < 0 ? -ms : ms;
  return std::string(ms < 0 ? "-" : "+") + std::to_string(a / 1000) + "." +
         std::to_string((a % 1000) / 100);
}

// This PC's clock against the TSA's: one RFC 3161 request over a random nonce-like datum,
// genTime compared with the local time halfway through the round trip. genTime has whole
// seconds (the demo and most TSAs), so about a second of the difference is rounding.
void check_tsa(std::vector<Check>& out, const std::optional<AgentConfig>& agent,
               const DoctorOptions& o) {
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
  std::array<std::uint8_t, 32> datum{};
  RAND_bytes(datum.data(), static_cast<int>(datum.size()));
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
void check_remote(std::vector<Check>& out, const std::optional<AgentConfig>& agent,
                  const DoctorOptions& o) {
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

// What the program on 127.0.0.1:`port` answers to `GET /` (the agent's status JSON), over TLS
// when the agent serves wss. The probe reads a public status only, so the certificate is not
// verified here (its trust is the tls check's business). nullopt with `why` when no answer.
std::optional<nlohmann::json> probe_agent(std::uint16_t port, bool tls, std::string& why) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    why = "socket failed";
    return std::nullopt;
  }
  const std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    why = "connect to 127.0.0.1:" + std::to_string(port) + " failed";
    return std::nullopt;
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(nullptr, &SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(nullptr, &SSL_free);
  if (tls) {
    ctx.reset(SSL_CTX_new(TLS_client_method()));
    if (ctx) ssl.reset(SSL_new(ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 || SSL_connect(ssl.get()) != 1) {
      why = "TLS handshake with 127.0.0.1:" + std::to_string(port) + " failed";
      ERR_clear_error();
      return std::nullopt;
    }
  }
  const std::string req =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\nConnection: close\r\n\r\n";
  const int sent = tls ? SSL_write(ssl.get(), req.data(), static_cast<int>(req.size()))
                       : static_cast<int>(::send(fd, req.data(), req.size(), MSG_NOSIGNAL));
  if (sent != static_cast<int>(req.size())) {
    why = "could not send the request";
    return std::nullopt;
  }
  std::string answer;
  std::array<char, 4096> buf{};
  while (answer.size() < 65536) {
    const int n = tls ? SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()))
                      : static_cast<int>(::recv(fd, buf.data(), buf.size(), 0));
    if (n <= 0) break;
    answer.append(buf.data(), static_cast<std::size_t>(n));
  }
  ERR_clear_error();
  const auto body_at = answer.find("\r\n\r\n");
  if (!answer.starts_with("HTTP/1.1 200") || body_at == std::string::npos) {
    why = answer.empty() ? "no answer within 3 s"
                         : "unexpected answer: " + answer.substr(0, answer.find('\r'));
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(answer.substr(body_at + 4), nullptr, false);
  if (!j.is_object() || j.value("name", "") != "kyso-agent") {
    why = "the answer is not the Kyso agent's status";
    return std::nullopt;
  }
  return j;
}

// Whether the agent listens on its port (or a fallback) and answers there, and if another
// program holds the port, which one.
void check_agent_port(std::vector<Check>& out, std::uint16_t port, bool tls) {
  for (std::uint16_t p = port; p <= port + config::kAgentPortFallbacks; ++p) {
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
  const auto agent = check_config(checks, o);
  const std::uint16_t port = agent ? agent->port : config::kDefaultAgentPort;
  check_usb(checks, o, profiles);
  check_modules(checks, lib);
  check_tokens_and_certificates(checks, lib, o.expiry_days);
  check_local_tls(checks, o);
  check_agent_port(checks, port, agent && agent->tls);
  check_documents_module(checks, agent);
  check_tsa(checks, agent, o);
  check_remote(checks, agent, o);
  return checks;
}

}  // namespace kyso::config
