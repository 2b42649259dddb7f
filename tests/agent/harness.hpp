#pragma once
// The agent under test, in-process on a free loopback port over the fixture's token (through the
// fault module), with the scripted pinentry as its dialog; and a real Beast WebSocket client.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "kyso/agent/server.hpp"
#include "kyso/agent/service.hpp"

namespace kyso::test {

inline constexpr const char* kSchool = "https://hocba.example.edu.vn";

/// Sets the scripted pinentry's behaviour (it inherits the agent's environment).
void pinentry_script(const std::string& action, const std::string& pin);
/// Dialog lines the scripted pinentry logged so far.
std::vector<std::string> pinentry_dialogs();

struct Agent {
  /// `tweak` may change the configuration before the server starts.
  explicit Agent(const std::function<void(firmware_config::AgentConfig&)>& tweak = {});
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  Agent(Agent&&) = delete;
  Agent& operator=(Agent&&) = delete;

  std::filesystem::path state;
  std::shared_ptr<agent::Service> service;
  std::unique_ptr<agent::Server> server;
  [[nodiscard]] std::uint16_t port() const { return server->port(); }
};

class Client {
 public:
  /// Opens the WebSocket; throws boost::system::system_error when the agent refuses, with the
  /// HTTP status in `refused_status`.
  Client(std::uint16_t port, std::optional<std::string> origin = kSchool, std::string host = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) = delete;
  Client& operator=(Client&&) = delete;

  void send_text(const std::string& text);
  /// The next message (`wait` at most; throws on timeout or close).
  nlohmann::json read();
  /// How long read() waits for a message.
  std::chrono::seconds wait{5};
  /// Sends a request and returns its response; events meanwhile go to `events`.
  nlohmann::json call(const std::string& method, const nlohmann::json& params,
                      nlohmann::json id = {});
  std::vector<nlohmann::json> events;
  boost::beast::websocket::stream<boost::beast::tcp_stream>& ws() { return *ws_; }

 private:
  boost::asio::io_context ioc_;
  std::unique_ptr<boost::beast::websocket::stream<boost::beast::tcp_stream>> ws_;
  boost::beast::flat_buffer buf_;
  int next_id_ = 1;
};

/// Tries an upgrade and returns the HTTP status the agent answered (101 when accepted).
int upgrade_status(std::uint16_t port, const std::optional<std::string>& origin,
                   const std::string& host);

/// Reads until the response to `id`; events meanwhile go to `c.events`.
nlohmann::json read_until_id(Client& c, const nlohmann::json& id);

/// The error code of a response (throws when it has none).
std::string code_of(const nlohmann::json& response);

/// An item for the demo: {"type":"hash", ...} over SHA-256 of `text`.
nlohmann::json hash_item(const std::string& text, const std::string& alg = "sha256");
Bytes item_digest(const nlohmann::json& item);

}  // namespace kyso::test
