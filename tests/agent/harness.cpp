#include "harness.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

namespace kyso::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace {

std::filesystem::path make_temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kyso-agent-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::filesystem::path& log_path() {
  static std::filesystem::path p;
  return p;
}

/// Runs the io_context until `done` or `wait`; on timeout closes the socket and throws.
template <typename Stream>
void run_until(net::io_context& ioc, const bool& done, Stream& s, std::chrono::seconds wait) {
  ioc.restart();
  ioc.run_for(wait);
  if (!done) {
    beast::get_lowest_layer(s).close();
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(100));
    throw std::runtime_error("timed out waiting for the agent");
  }
}

}  // namespace

void pinentry_script(const std::string& action, const std::string& pin) {
  ::setenv("KYSO_PINENTRY_ACTION", action.c_str(), 1);
  ::setenv("KYSO_PINENTRY_PIN", pin.c_str(), 1);
}

std::vector<std::string> pinentry_dialogs() {
  std::vector<std::string> out;
  std::ifstream in(log_path());
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

Agent::Agent(const std::function<void(firmware_config::AgentConfig&)>& tweak)
    : state(make_temp_dir()) {
  const auto& f = fixture();
  Faults::reset();
  log_path() = state / "pinentry.log";
  ::setenv("KYSO_PINENTRY_LOG", log_path().c_str(), 1);
  if (std::getenv("KYSO_PINENTRY_ACTION") == nullptr) pinentry_script("ok", f.user_pin);
  firmware_config::AgentConfig cfg;
  cfg.port = 0;
  cfg.pkcs11_modules = {f.fault_module};
  cfg.system_modules = false;
  cfg.pinentry = KYSO_TEST_PINENTRY;
  cfg.state_dir = state / "state";
  cfg.allowed_origins = {kSchool};
  cfg.limits.approval_timeout = std::chrono::seconds(4);
#ifdef KYSO_FORMATS_MODULE_PATH
  // xml and pdf items go through the built kyso-formats-documents.so, as in kyso-agent.
  cfg.formats_module = KYSO_FORMATS_MODULE_PATH;
#endif
  if (tweak) tweak(cfg);
  service = std::make_shared<agent::Service>(std::move(cfg));
  server = std::make_unique<agent::Server>(service);
  server->start();
}

Agent::~Agent() {
  if (server) server->stop();
  server.reset();
  service.reset();
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
}

Client::Client(std::uint16_t port, std::optional<std::string> origin, std::string host)
    : ws_(std::make_unique<websocket::stream<beast::tcp_stream>>(ioc_)) {
  if (host.empty()) host = "127.0.0.1:" + std::to_string(port);
  beast::get_lowest_layer(*ws_).connect(tcp::endpoint(net::ip::address_v4::loopback(), port));
  ws_->set_option(websocket::stream_base::decorator([origin](websocket::request_type& req) {
    if (origin) req.set(http::field::origin, *origin);
  }));
  ws_->handshake(host, "/");
}

Client::~Client() {
  beast::error_code ec;
  beast::get_lowest_layer(*ws_).socket().close(ec);
}

void Client::send_text(const std::string& text) {
  ws_->text(true);
  ws_->write(net::buffer(text));
}

json Client::read() {
  bool done = false;
  beast::error_code result;
  ws_->async_read(buf_, [&](beast::error_code ec, std::size_t) {
    result = ec;
    done = true;
  });
  run_until(ioc_, done, *ws_, wait);
  if (result) throw boost::system::system_error(result);
  std::string text = beast::buffers_to_string(buf_.data());
  buf_.consume(buf_.size());
  return json::parse(text);
}

json Client::call(const std::string& method, const json& params, json id) {
  if (id.is_null()) id = next_id_++;
  send_text(json{{"id", id}, {"method", method}, {"params", params}}.dump());
  for (;;) {
    json m = read();
    if (m.contains("event")) {
      events.push_back(std::move(m));
      continue;
    }
    if (m.value("id", json()) == id) return m;
  }
}

int upgrade_status(std::uint16_t port, const std::optional<std::string>& origin,
                   const std::string& host) {
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws(ioc);
  beast::error_code ec;
  beast::get_lowest_layer(ws).connect(tcp::endpoint(net::ip::address_v4::loopback(), port), ec);
  if (ec) return -1;
  ws.set_option(websocket::stream_base::decorator([origin](websocket::request_type& req) {
    if (origin) req.set(http::field::origin, *origin);
  }));
  websocket::response_type res;
  ws.handshake(res, host, "/", ec);
  if (!ec) return 101;
  return static_cast<int>(res.result_int());
}

json hash_item(const std::string& text, const std::string& alg) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  const auto h = parse_hash_algorithm(alg);
  const Bytes d = digest(openssl_md_name(*h), {p, text.size()});
  return {{"type", "hash"}, {"hash", to_base64(d)}, {"hashAlgorithm", alg}, {"title", text}};
}

Bytes item_digest(const json& item) {
  return from_base64(item.at("hash").get<std::string>());
}

nlohmann::json read_until_id(Client& c, const nlohmann::json& id) {
  for (;;) {
    nlohmann::json m = c.read();
    if (m.contains("event")) {
      c.events.push_back(m);
      continue;
    }
    if (m.value("id", nlohmann::json()) == id) return m;
  }
}

std::string code_of(const nlohmann::json& response) {
  return response.at("error").at("code").get<std::string>();
}

}  // namespace kyso::test
