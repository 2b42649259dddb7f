#pragma once
// A page's WebSocket to kyso-agent, for the benchmarks: connects from `origin`, sends requests,
// reads messages, waits for a response skipping the events on the way. Header-only, shared by
// bench/agent and bench/token.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace kyso::bench {

struct AgentClient {
  boost::asio::io_context ioc;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws{ioc};
  boost::beast::flat_buffer buf;

  AgentClient(std::uint16_t port, std::string origin) {
    namespace websocket = boost::beast::websocket;
    ws.next_layer().connect({boost::asio::ip::address_v4::loopback(), port});
    // As a browser does: Chromium sets TCP_NODELAY on every socket.
    ws.next_layer().set_option(boost::asio::ip::tcp::no_delay(true));
    ws.set_option(
        websocket::stream_base::decorator([origin = std::move(origin)](websocket::request_type& r) {
          r.set(boost::beast::http::field::origin, origin);
        }));
    ws.read_message_max(64UL * 1024 * 1024);
    ws.handshake("127.0.0.1:" + std::to_string(port), "/");
  }
  void send(const nlohmann::json& j) {
    ws.text(true);
    ws.write(boost::asio::buffer(j.dump()));
  }
  nlohmann::json read() {
    ws.read(buf);
    auto j = nlohmann::json::parse(boost::beast::buffers_to_string(buf.data()));
    buf.consume(buf.size());
    return j;
  }
  /// Sends and waits for the response; events on the way are skipped.
  nlohmann::json call(const nlohmann::json& req) {
    send(req);
    for (;;) {
      auto m = read();
      if (!m.contains("event") && m["id"] == req["id"]) return m;
    }
  }
};

}  // namespace kyso::bench
