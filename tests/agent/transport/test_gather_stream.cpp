// The transport's write-gathering layer (agent/src/transport/gather_stream.hpp) under a real
// beast::websocket::stream on a loopback TCP connection, as the agent's sessions use it, read by
// a real Beast client on its own thread: a held run of messages goes to the socket in one write
// and still arrives as separate messages, in order; a reader that stops reading stalls the
// writer after a bounded number of bytes and gets everything once it reads again; closing
// flushes what is gathered before the close frame.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "transport/gather_stream.hpp"

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using kyso::agent::transport::GatherStream;
using namespace std::chrono_literals;

/// One WebSocket connection on loopback: `server` as the agent's sessions have it (driven by
/// `ioc` on the test's thread), `client` a plain Beast client for a thread of its own.
/// `buffer_bytes` > 0 makes both sockets' kernel buffers small (SO_SNDBUF, SO_RCVBUF).
struct Connection {
  explicit Connection(int buffer_bytes = 0) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    std::thread connect([&] {
      auto& socket = client.next_layer().socket();
      socket.open(tcp::v4());
      if (buffer_bytes > 0) socket.set_option(net::socket_base::receive_buffer_size(buffer_bytes));
      socket.connect(acceptor.local_endpoint());
      client.handshake("127.0.0.1", "/");
    });
    tcp::socket accepted = acceptor.accept();
    if (buffer_bytes > 0) accepted.set_option(net::socket_base::send_buffer_size(buffer_bytes));
    server.emplace(std::move(accepted));
    bool done = false;
    server->async_accept([&](beast::error_code ec) {
      CHECK_FALSE(ec);
      done = true;
    });
    run_until([&] { return done; });
    connect.join();
  }

  GatherStream<beast::tcp_stream>& layer() { return server->next_layer(); }

  /// Runs the server's handlers until `done` holds.
  template <typename Pred>
  void run_until(Pred done) {
    while (!done()) {
      if (ioc.stopped()) ioc.restart();
      ioc.run_one();
    }
  }

  /// Writes `messages` one after the other, held as a session holds a run of queued ones,
  /// counting the writes that completed; flushes after the last.
  void write_run(const std::vector<std::string>& messages) {
    write_next_ = [&messages, this](std::size_t i) {
      if (i == messages.size()) {
        layer().hold(false);
        layer().async_flush([this](beast::error_code ec) {
          CHECK_FALSE(ec);
          flushed = true;
        });
        return;
      }
      layer().hold(true);
      server->text(true);
      server->async_write(net::buffer(messages[i]),
                          [&messages, this, i](beast::error_code ec, std::size_t) {
                            REQUIRE_FALSE(ec);
                            ++written;
                            written_bytes += messages[i].size();
                            write_next_(i + 1);
                          });
    };
    write_next_(0);
  }

  /// Reads `n` messages on a thread of the client's own.
  std::thread read(std::size_t n) {
    return std::thread([this, n] {
      beast::flat_buffer b;
      for (std::size_t i = 0; i < n; ++i) {
        client.read(b);
        received.push_back(beast::buffers_to_string(b.data()));
        b.consume(b.size());
      }
    });
  }

  net::io_context ioc;
  net::io_context client_ioc;
  websocket::stream<beast::tcp_stream> client{client_ioc};
  std::optional<websocket::stream<GatherStream<beast::tcp_stream>>> server;
  std::size_t written = 0;
  std::size_t written_bytes = 0;
  bool flushed = false;
  std::vector<std::string> received;

 private:
  std::function<void(std::size_t)> write_next_;
};

std::vector<std::string> messages(std::size_t n, std::size_t size) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    // Sizes vary around `size`, so that frame headers of both lengths occur.
    std::string m = R"({"event":"batch.progress","params":{"done":)" + std::to_string(i + 1) + "}";
    m.resize(size / 2 + (i * 37) % size, ' ');
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

TEST_CASE("gatherStream_heldRunOfMessages_oneSocketWriteSeparateMessagesInOrder", "[transport]") {
  Connection c;
  const std::size_t before = c.layer().flushes();  // the upgrade's answer went out already
  // 300 progress events of about 100 bytes: under kGatherBytes together.
  const auto sent = messages(300, 100);
  auto reader = c.read(sent.size());
  c.write_run(sent);
  c.run_until([&] { return c.flushed; });
  reader.join();
  CHECK(c.layer().flushes() - before == 1);
  CHECK(c.received == sent);

  // A longer run goes out kGatherBytes at a time: still a few writes for 2,000 messages.
  c.flushed = false;
  c.received.clear();
  const auto more = messages(2000, 160);
  std::size_t bytes = 0;
  for (const auto& m : more) bytes += m.size() + 4;  // with the frame header
  reader = c.read(more.size());
  const std::size_t at = c.layer().flushes();
  c.write_run(more);
  c.run_until([&] { return c.flushed; });
  reader.join();
  INFO(bytes << " bytes in " << c.layer().flushes() - at << " writes");
  CHECK(c.layer().flushes() - at <= bytes / GatherStream<beast::tcp_stream>::kGatherBytes + 2);
  CHECK(c.received == more);
}

TEST_CASE("gatherStream_readerStopsReading_writerStallsAfterBoundedBytesThenAllArrive",
          "[transport]") {
  Connection c(16 * 1024);
  // 4 MB of 1 KB messages to a reader that does not read: held writes stop completing once
  // the socket is full and kGatherBytes more are gathered, as the session's queue then fills
  // and its producers wait (write_queue).
  const auto sent = messages(4000, 1000);
  c.write_run(sent);
  if (c.ioc.stopped()) c.ioc.restart();
  c.ioc.run_for(500ms);
  INFO(c.written << " messages (" << c.written_bytes << " bytes) written to the layer");
  CHECK(c.written < sent.size());
  CHECK(c.written_bytes < 1024 * 1024);
  CHECK_FALSE(c.flushed);
  // Reading again, the page gets every message, whole and in order.
  auto reader = c.read(sent.size());
  c.run_until([&] { return c.flushed; });
  reader.join();
  CHECK(c.written == sent.size());
  CHECK(c.received == sent);
}

TEST_CASE("gatherStream_closedWhileHolding_gatheredMessagesThenTheCloseFrame", "[transport]") {
  Connection c;
  const auto sent = messages(10, 100);
  // Held writes complete at once and wait in the layer (no flush yet)...
  c.layer().hold(true);
  const std::size_t before = c.layer().flushes();
  std::size_t done = 0;
  for (const auto& m : sent) {
    c.server->async_write(net::buffer(m), [&](beast::error_code ec, std::size_t) {
      CHECK_FALSE(ec);
      ++done;
    });
    const std::size_t want = done + 1;
    c.run_until([&] { return done == want; });
  }
  CHECK(c.layer().flushes() == before);
  // ...and the session's end releases the hold and closes: the page reads the ten messages,
  // then the close frame with its code.
  c.layer().hold(false);
  bool closed = false;
  c.server->async_close(websocket::close_code::going_away, [&](beast::error_code ec) {
    CHECK_FALSE(ec);
    closed = true;
  });
  beast::error_code ec;
  std::thread reader([&] {
    beast::flat_buffer b;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      c.client.read(b);
      c.received.push_back(beast::buffers_to_string(b.data()));
      b.consume(b.size());
    }
    c.client.read(b, ec);
  });
  c.run_until([&] { return closed; });
  reader.join();
  CHECK(c.received == sent);
  CHECK(ec == websocket::error::closed);
  CHECK(c.client.reason().code == websocket::close_code::going_away);
}
