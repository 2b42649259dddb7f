#pragma once
// The layer under each session's beast::websocket::stream (listener.cpp) that puts the frames of
// several queued messages on the wire in one write. While the session holds it (it has more
// messages queued), each frame Beast writes is copied into one buffer and its write completes at
// once; when the session's queue is drained it flushes, and the socket gets every frame in one
// system call instead of one per message (a 2,000-item batch's events: 2,000 sendmsg calls
// before). Messages stay separate WebSocket messages: only their bytes share a write.
//
// Memory stays bounded whatever the peer reads: held bytes beyond kGatherBytes wait for the
// flush in flight, so a connection holds at most two buffers of about that size (one being
// written, one gathering) and one message, besides the session's own write_queue. Writes the
// session does not hold (the upgrade's answer, pongs, the close frame) complete once flushed.
// Reads pass through.

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffer_traits.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cstddef>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace kyso::agent::transport {

template <class Next>
class GatherStream {
 public:
  using next_layer_type = Next;
  using executor_type = boost::beast::executor_type<Next>;

  /// Held bytes gathered before a held write waits for the flush in flight (and a flush starts
  /// without waiting for the session's queue to drain).
  static constexpr std::size_t kGatherBytes = 64 * 1024;

  template <typename... Args>
  explicit GatherStream(Args&&... args) : next_(std::forward<Args>(args)...) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }

  /// While held, writes are gathered and complete at once; the holder ends a run of writes with
  /// async_flush. Released, every write completes once it is on the socket.
  void hold(bool on) noexcept { held_ = on; }

  /// System calls that wrote gathered bytes so far (the bench and the tests compare it with the
  /// messages sent).
  [[nodiscard]] std::size_t flushes() const noexcept { return flushes_; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const Buffers& b) { write(std::move(handler), b); }, token, buffers);
  }

  /// Completes once every byte written before it is on the socket (or the socket failed).
  template <class Token>
  auto async_flush(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code)>(
        [this](auto handler) { flush(std::move(handler)); }, token);
  }

 private:
  /// A completion waiting for a flush; it also keeps the connection (and so this layer) alive
  /// while the flush is in flight.
  struct Waiter {
    Waiter() = default;
    virtual ~Waiter() = default;
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;
    Waiter(Waiter&&) = delete;
    Waiter& operator=(Waiter&&) = delete;
    virtual void complete(executor_type ex, boost::beast::error_code ec) = 0;
  };
  template <class Handler, class... Done>
  struct WaiterFor final : Waiter {
    WaiterFor(Handler h, Done... d) : handler(std::move(h)), done(d...) {}
    void complete(executor_type ex, boost::beast::error_code ec) override {
      std::apply(
          [&](auto... d) {
            boost::asio::post(
                ex, boost::beast::bind_front_handler(std::move(handler), ec, (ec ? Done{} : d)...));
          },
          done);
    }
    Handler handler;
    std::tuple<Done...> done;
  };
  using Waiters = std::vector<std::unique_ptr<Waiter>>;

  template <class Handler, class Buffers>
  void write(Handler handler, const Buffers& buffers) {
    namespace net = boost::asio;
    if (failed_) {
      net::post(get_executor(),
                boost::beast::bind_front_handler(std::move(handler), failed_, std::size_t{0}));
      return;
    }
    const std::size_t n = boost::beast::buffer_bytes(buffers);
    pending_.commit(net::buffer_copy(pending_.prepare(n), buffers));
    if (held_ && pending_.size() <= kGatherBytes) {
      net::post(get_executor(), boost::beast::bind_front_handler(std::move(handler),
                                                                 boost::beast::error_code{}, n));
      return;
    }
    pending_waiters_.push_back(
        std::make_unique<WaiterFor<Handler, std::size_t>>(std::move(handler), n));
    start();
  }

  template <class Handler>
  void flush(Handler handler) {
    if (failed_ || (pending_.size() == 0 && !flying_)) {
      boost::asio::post(get_executor(),
                        boost::beast::bind_front_handler(std::move(handler), failed_));
      return;
    }
    auto w = std::make_unique<WaiterFor<Handler>>(std::move(handler));
    if (pending_.size() == 0) {
      flying_waiters_.push_back(std::move(w));  // everything before it is in flight
    } else {
      pending_waiters_.push_back(std::move(w));
      start();
    }
  }

  /// Writes the gathered bytes unless a write is in flight (on_flushed starts the next). Only
  /// called with a waiter in pending_waiters_, which keeps this layer alive until it completes.
  void start() {
    if (flying_ || pending_.size() == 0) return;
    flying_ = true;
    std::swap(pending_, flight_);
    flying_waiters_ = std::exchange(pending_waiters_, {});
    ++flushes_;
    boost::asio::async_write(next_, flight_.data(),
                             [this](boost::beast::error_code ec, std::size_t) { on_flushed(ec); });
  }

  void on_flushed(boost::beast::error_code ec) {
    flying_ = false;
    flight_.clear();
    // A large message (a batch's summary, a document) leaves no buffer of its size behind for
    // as long as the page stays connected.
    if (flight_.capacity() > 2 * kGatherBytes) flight_.shrink_to_fit();
    Waiters done = std::exchange(flying_waiters_, {});
    if (ec) {
      failed_ = ec;
      pending_.clear();
      for (auto& w : pending_waiters_) done.push_back(std::move(w));
      pending_waiters_.clear();
    }
    for (auto& w : done) w->complete(get_executor(), ec);
    if (!pending_waiters_.empty()) start();
  }

  Next next_;
  bool held_ = false;
  bool flying_ = false;
  boost::beast::error_code failed_;
  boost::beast::flat_buffer pending_;  ///< gathered, not yet written
  boost::beast::flat_buffer flight_;   ///< being written
  Waiters pending_waiters_;            ///< complete when pending_ is written
  Waiters flying_waiters_;             ///< complete when flight_ is written
  std::size_t flushes_ = 0;
};

/// The WebSocket closing handshake ends with this: whatever is gathered (the close frame among
/// it) goes out before the next layer's teardown. (No synchronous teardown: sessions close
/// asynchronously only.)
template <class Next, class TeardownHandler>
void async_teardown(boost::beast::role_type role, GatherStream<Next>& stream,
                    TeardownHandler&& handler) {
  stream.async_flush([role, &stream, h = std::forward<TeardownHandler>(handler)](
                         boost::beast::error_code) mutable {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, stream.next_layer(), std::move(h));
  });
}

}  // namespace kyso::agent::transport
