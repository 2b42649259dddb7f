#include "listener.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <string>

#include "../activation.hpp"
#include "gather_stream.hpp"
#include "kyso/agent/pairing.hpp"
#include "kyso/agent/peer.hpp"
#include "kyso/core/text.hpp"

namespace kyso::agent::transport {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr auto kUpgradeTimeout = std::chrono::seconds(10);
constexpr auto kPeerTimeout = std::chrono::seconds(30);
constexpr std::size_t kReadChunk = 64 * 1024;

/// A page-chosen header for the debug log: at most 100 bytes, printable ASCII only.
std::string capped(std::string_view v) {
  std::string out;
  for (const char c : v.substr(0, 100)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (v.size() > 100) out += "...";
  return out;
}

}  // namespace

/// What the listener needs of every session: to close it when the agent stops.
class SessionBase {
 public:
  SessionBase() = default;
  virtual ~SessionBase() = default;
  SessionBase(const SessionBase&) = delete;
  SessionBase& operator=(const SessionBase&) = delete;
  SessionBase(SessionBase&&) = delete;
  SessionBase& operator=(SessionBase&&) = delete;
  /// Ends the connection on its strand (any thread, while the io_context runs).
  virtual void shutdown() = 0;
  /// Ends it here and now: only once no thread runs the io_context any more, when a shutdown
  /// posted to it may never have run.
  virtual void abandon() noexcept = 0;
};

namespace {

/// One connection: the HTTP upgrade (every check before accepting), then WebSocket messages in
/// and out. Everything but the outbox is touched on the connection's strand only.
template <class NextLayer>
class Session final : public SessionBase,
                      public Channel,
                      public std::enable_shared_from_this<Session<NextLayer>> {
 public:
  static constexpr bool kTls = std::is_same_v<NextLayer, beast::ssl_stream<beast::tcp_stream>>;

  template <typename... Args>
  /// `keep` is what the stream's arguments refer to (the TLS context it started with), held
  /// until the stream is gone.
  explicit Session(std::shared_ptr<Listener> listener, std::shared_ptr<const void> keep,
                   Args&&... args)
      : keep_(std::move(keep)),
        ws_(std::forward<Args>(args)...),
        idle_timer_(ws_.get_executor()),
        throttle_timer_(ws_.get_executor()),
        listener_(std::move(listener)),
        limits_(listener_->limits()) {}

  ~Session() override {
    if (counted_) listener_->release_slot(origin_, trusted_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  void run() {
    net::dispatch(ws_.get_executor(),
                  beast::bind_front_handler(&Session::on_run, this->shared_from_this()));
  }

  // ---- Channel -------------------------------------------------------------------------------

  void send(std::string text) override {
    const bool on_strand = running_on_strand();
    bool post = false;
    {
      std::unique_lock lock(outbox_mutex_);
      if (!on_strand) {
        // A job's thread waits for room; the strand never does (it frees the room).
        ++waiting_;
        room_.wait(lock, [&] { return queued_ < limits_.write_queue || closed_outbox_; });
        --waiting_;
      }
      if (closed_outbox_) return;
      ++queued_;
      outbox_.push_back(std::move(text));
      post = !on_strand && !std::exchange(drain_posted_, true);
    }
    if (on_strand) {
      drain();
    } else if (post) {
      net::post(ws_.get_executor(),
                beast::bind_front_handler(&Session::drain, this->shared_from_this()));
    }
  }

  void close(std::uint16_t code) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), code] {
      if (self->closed_) return;
      self->end();
      self->ws_.async_close(websocket::close_reason(code),
                            [self](beast::error_code) { self->drop_socket(); });
    });
  }

  // ---- SessionBase ---------------------------------------------------------------------------

  void shutdown() override {
    net::post(ws_.get_executor(), [self = this->shared_from_this()] {
      if (self->closed_) return;
      self->end();
      self->drop_socket();
    });
  }

  void abandon() noexcept override {
    try {
      end();
    } catch (...) {  // NOLINT(bugprone-empty-catch): the agent is stopping; the socket still closes
    }
    drop_socket();
  }

 private:
  bool running_on_strand() {
    // Every session's executor is the strand the listener made for its socket. target() points
    // into the executor it is called on: that copy must outlive the check, not be a temporary.
    using Strand = net::strand<net::io_context::executor_type>;
    const auto executor = ws_.get_executor();
    const auto* strand = executor.template target<Strand>();
    return strand != nullptr && strand->running_in_this_thread();
  }

  // ---- HTTP upgrade --------------------------------------------------------------------------

  void on_run() {
    beast::get_lowest_layer(ws_).expires_after(kUpgradeTimeout);
    if constexpr (kTls) {
      ws_.next_layer().next_layer().async_handshake(
          net::ssl::stream_base::server,
          beast::bind_front_handler(&Session::on_handshake, this->shared_from_this()));
    } else {
      do_read_request();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (ec) return;  // not a TLS client, or gone: nothing to answer
    do_read_request();
  }

  void do_read_request() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(0);
    http::async_read(
        ws_.next_layer(), buffer_, *parser_,
        beast::bind_front_handler(&Session::on_read_request, this->shared_from_this()));
  }

  void on_read_request(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) {
      // Timeout, oversized header or a body: drop the connection. Also what a browser does
      // when its Local Network Access check, made once connected, blocks the page.
      spdlog::debug("connection closed before an HTTP request: {}", ec.message());
      return;
    }
    auto& gate = listener_->gate();
    const auto& req = parser_->get();
    spdlog::debug("HTTP {} {} Origin '{}'", std::string_view(req.method_string()),
                  capped(req.target()), capped(req[http::field::origin]));
    const std::string host(req[http::field::host]);
    if (!listener_->host_ok(host)) {
      return reply(http::status::forbidden,
                   gate.refused(ErrorCode::BadRequest, std::string(req[http::field::origin]),
                                "Host must be 127.0.0.1, localhost or [::1] with the agent's "
                                "port, not '" +
                                    host + "'",
                                true));
    }
    if (!websocket::is_upgrade(req)) {
      if (req.method() == http::verb::get && req.target() == "/") {
        return reply(http::status::ok, gate.status_body());
      }
      return reply(http::status::not_found,
                   gate.refused(ErrorCode::BadRequest, {}, "only GET / and WebSocket", false));
    }
    const auto origin_it = req.find(http::field::origin);
    if (origin_it == req.end()) {
      return reply(http::status::forbidden,
                   gate.refused(ErrorCode::OriginForbidden, {}, "no Origin header", true));
    }
    origin_ = normalize_origin(origin_it->value());
    if (!gate.admits(origin_)) {
      return reply(
          http::status::forbidden,
          gate.refused(ErrorCode::OriginForbidden, origin_,
                       "origin " + origin_ + " is neither allow-listed, paired nor pairable",
                       true));
    }
    trusted_ = gate.trusted(origin_);
    if (!listener_->take_slot(origin_, trusted_)) {
      return reply(http::status::service_unavailable,
                   gate.refused(ErrorCode::Busy, origin_,
                                trusted_ ? "too many connections"
                                         : "too many connections from origins that are not "
                                           "allow-listed nor paired",
                                false));
    }
    counted_ = true;

    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = kUpgradeTimeout;
    // Beast's own timeout finds dead peers (a ping, then silence); the idle timeout proper is
    // "no message for idle_timeout", kept by arm_idle() below.
    t.idle_timeout =
        std::max<std::chrono::steady_clock::duration>(limits_.idle_timeout, kPeerTimeout);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    // Browsers send each message as one frame: the frame limit bounds every v1 message. The
    // limit is kept by on_read() rather than Beast: Beast's own failure path closes the socket
    // after reading 2 KB of the rest, so a peer still sending got a reset, often before it had
    // read the close frame (1006 instead of 1009).
    max_message_ = std::min(limits_.max_frame_bytes, limits_.max_message_bytes);
    ws_.read_message_max(0);
    ws_.set_option(websocket::stream_base::decorator(
        [name = gate.server_name()](websocket::response_type& res) {
          res.set(http::field::server, name);
        }));
    ws_.async_accept(req, beast::bind_front_handler(&Session::on_accept, this->shared_from_this()));
  }

  void reply(http::status status, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::content_type, "application/json");
    res->set(http::field::server, listener_->gate().server_name());
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(false);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(ws_.next_layer(), *res,
                      [self = this->shared_from_this(), res](beast::error_code, std::size_t) {
                        beast::error_code ec;
                        beast::get_lowest_layer(self->ws_).socket().shutdown(
                            tcp::socket::shutdown_both, ec);
                      });
  }

  void on_accept(beast::error_code ec) {
    if (ec) return;
    buffer_.consume(buffer_.size());
    handler_ = listener_->gate().open(origin_, this->shared_from_this(), ws_.get_executor());
    listener_->add(this->shared_from_this());
    last_activity_ = std::chrono::steady_clock::now();
    arm_idle(last_activity_ + limits_.idle_timeout);
    do_read();
  }

  // ---- idle timeout: no message either way for idle_timeout, and nothing in flight ------------

  void arm_idle(std::chrono::steady_clock::time_point at) {
    if (limits_.idle_timeout.count() <= 0) return;
    idle_timer_.expires_at(at);
    idle_timer_.async_wait(beast::bind_front_handler(&Session::on_idle, this->shared_from_this()));
  }

  void on_idle(beast::error_code ec) {
    if (ec || closed_) return;
    const auto now = std::chrono::steady_clock::now();
    if (handler_ && handler_->busy()) return arm_idle(now + limits_.idle_timeout);
    if (now < last_activity_ + limits_.idle_timeout) {
      return arm_idle(last_activity_ + limits_.idle_timeout);
    }
    end();
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "idle"),
                    [self = this->shared_from_this()](beast::error_code) { self->drop_socket(); });
  }

  // ---- reading -------------------------------------------------------------------------------

  [[nodiscard]] bool queue_full() {
    const std::lock_guard lock(outbox_mutex_);
    return queued_ >= limits_.write_queue;
  }

  void do_read() {
    // A full queue pauses reading: a page that sends requests but does not read the answers
    // stops being read until it does.
    if (reading_ || closed_ || throttled_ || queue_full()) return;
    if (wait_for_allowance()) return;
    read_more();
  }

  /// An origin neither allow-listed nor paired (now: it may pair on this connection, or be
  /// unpaired on another) reads its next message only once its allowance has one: a burst,
  /// then a few a second. True when the read waits on the timer (which calls do_read again).
  bool wait_for_allowance() {
    if (listener_->gate().trusted(origin_)) {
      if (!trusted_ && listener_->promote_slot(origin_)) trusted_ = true;
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    const std::chrono::duration<double> since = now - refilled_;
    allowance_ = std::min(kUnpairedBurst, allowance_ + since.count() * kUnpairedPerSecond);
    refilled_ = now;
    if (allowance_ >= 1) {
      allowance_ -= 1;
      return false;
    }
    throttled_ = true;
    throttle_timer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>((1 - allowance_) / kUnpairedPerSecond)));
    throttle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      self->throttled_ = false;
      if (!ec) self->do_read();
    });
    return true;
  }

  /// The next part of the current message (whatever the queue: it is paused between messages).
  void read_more() {
    reading_ = true;
    const std::size_t room = max_message_ + 1 - std::min(buffer_.size(), max_message_);
    ws_.async_read_some(buffer_, std::min(room, kReadChunk),
                        beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    reading_ = false;
    if (ec) {
      // Closed by the peer, the idle timeout, or a protocol error.
      end();
      return;
    }
    if (buffer_.size() > max_message_) {
      // The close frame (1009) first; Beast's closing handshake reads and drops the rest of the
      // message until the peer's close frame, then the TCP connection closes cleanly.
      end();
      buffer_.consume(buffer_.size());
      ws_.async_close(
          websocket::close_reason(websocket::close_code::too_big),
          [self = this->shared_from_this()](beast::error_code) { self->drop_socket(); });
      return;
    }
    if (!ws_.is_message_done()) return read_more();
    last_activity_ = std::chrono::steady_clock::now();
    const bool text = ws_.got_text();
    std::string msg = text ? beast::buffers_to_string(buffer_.data()) : std::string();
    buffer_.consume(buffer_.size());
    // A large message (an upload's chunk) leaves no buffer of its size behind for as long as
    // the page stays connected: pages stay all day, and each would keep its largest message.
    if (buffer_.capacity() > kReadChunk) buffer_.shrink_to_fit();
    if (handler_) handler_->on_message(std::move(msg), text);
    do_read();
  }

  // ---- writing: one message in flight, from a queue the strand owns; a run of queued messages
  // shares one write to the socket (gather_stream.hpp) ---------------------------------------

  void drain() {
    {
      const std::lock_guard lock(outbox_mutex_);
      drain_posted_ = false;
      for (auto& t : outbox_) queue_.push_back(std::move(t));
      outbox_.clear();
    }
    if (!writing_ && !queue_.empty() && !closed_) do_write();
  }

  void do_write() {
    writing_ = true;
    ws_.next_layer().hold(true);
    ws_.text(true);
    ws_.async_write(net::buffer(queue_.front()),
                    beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    writing_ = false;
    if (ec) {
      end();
      return;
    }
    ++messages_;
    queue_.pop_front();
    if (closed_) return;
    bool wake = false;
    {
      const std::lock_guard lock(outbox_mutex_);
      --queued_;
      // A job's thread waiting for room is woken once the queue is half empty, not for every
      // message: it then queues a run of messages that share the next write.
      wake = waiting_ > 0 && queued_ <= limits_.write_queue / 2;
      // What a job's thread queued meanwhile joins the run (its posted drain finds it gone).
      for (auto& t : outbox_) queue_.push_back(std::move(t));
      outbox_.clear();
    }
    if (wake) room_.notify_all();
    if (!queue_.empty()) {
      do_write();
    } else {
      // The queue is drained: the run goes to the socket in one write.
      last_activity_ = std::chrono::steady_clock::now();
      ws_.next_layer().hold(false);
      ws_.next_layer().async_flush(
          beast::bind_front_handler(&Session::on_flush, this->shared_from_this()));
    }
    do_read();  // resumes reading when the queue had paused it
  }

  void on_flush(beast::error_code ec) {
    if (ec) end();
  }

  // ---- the end -------------------------------------------------------------------------------

  /// The connection is over: no more messages either way, waiting producers released, the
  /// handler told (once). On the strand.
  void end() {
    if (closed_) return;
    closed_ = true;
    spdlog::debug("connection closed: {} messages sent in {} writes", messages_,
                  ws_.next_layer().flushes());
    ws_.next_layer().hold(false);  // a close frame from now on goes out at once
    idle_timer_.cancel();
    throttle_timer_.cancel();
    {
      const std::lock_guard lock(outbox_mutex_);
      closed_outbox_ = true;
      outbox_.clear();
      queued_ = 0;
    }
    room_.notify_all();
    if (!writing_) queue_.clear();                    // a write in flight still reads its front()
    if (auto h = std::move(handler_)) h->on_close();  // the handler holds this channel: let go
  }

  void drop_socket() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  std::shared_ptr<const void> keep_;  ///< declared before ws_: outlives it
  websocket::stream<GatherStream<NextLayer>> ws_;
  net::steady_timer idle_timer_;
  net::steady_timer throttle_timer_;
  double allowance_ = kUnpairedBurst;  ///< messages an unpaired origin may send now
  std::chrono::steady_clock::time_point refilled_ = std::chrono::steady_clock::now();
  bool throttled_ = false;  ///< a read waits on throttle_timer_
  std::chrono::steady_clock::time_point last_activity_{};
  std::shared_ptr<Listener> listener_;
  const firmware_config::AgentLimits limits_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::size_t max_message_ = 0;  ///< bytes of one message; more closes with 1009
  std::string origin_;
  std::shared_ptr<Handler> handler_;
  bool counted_ = false;
  bool trusted_ = false;  ///< which quota the connection's slot came from
  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;
  std::deque<std::string> queue_;  // the strand's: front() is being written
  std::size_t messages_ = 0;       ///< written so far (the debug log compares them with writes)
  // Messages from other threads on their way to queue_, and the count of both.
  std::mutex outbox_mutex_;
  std::condition_variable room_;
  std::vector<std::string> outbox_;
  std::size_t queued_ = 0;
  std::size_t waiting_ = 0;  ///< job threads waiting for room
  bool drain_posted_ = false;
  bool closed_outbox_ = false;
};

}  // namespace

Listener::Listener(net::io_context& ioc, const firmware_config::AgentConfig& cfg,
                   std::shared_ptr<Gate> gate)
    : ioc_(ioc), gate_(std::move(gate)), limits_(cfg.limits) {
  if (cfg.tls) tls_.emplace(cfg.tls_cert_file, cfg.tls_key_file);
  bind(cfg);
}

Listener::~Listener() = default;

bool Listener::host_ok(std::string_view host) const {
  const std::string h = ascii_lower(host);
  const std::string p = ":" + std::to_string(port_);
  return h == "127.0.0.1" + p || h == "localhost" + p || h == "[::1]" + p;
}

bool Listener::take_slot(const std::string& origin, bool trusted) {
  const std::lock_guard lock(slots_mutex_);
  if (trusted) {
    if (trusted_ >= limits_.max_connections) return false;
    ++trusted_;
  } else {
    auto& mine = unpaired_[origin];
    if (unpaired_total_ >= kUnpairedConnections || mine >= kUnpairedPerOrigin) {
      if (mine == 0) unpaired_.erase(origin);
      return false;
    }
    ++mine;
    ++unpaired_total_;
  }
  connections_.fetch_add(1);
  return true;
}

void Listener::release_slot(const std::string& origin, bool trusted) noexcept {
  const std::lock_guard lock(slots_mutex_);
  if (trusted) {
    --trusted_;
  } else if (const auto it = unpaired_.find(origin); it != unpaired_.end()) {
    if (--it->second == 0) unpaired_.erase(it);
    --unpaired_total_;
  }
  connections_.fetch_sub(1);
}

bool Listener::promote_slot(const std::string& origin) {
  const std::lock_guard lock(slots_mutex_);
  if (trusted_ >= limits_.max_connections) return false;
  if (const auto it = unpaired_.find(origin); it != unpaired_.end()) {
    if (--it->second == 0) unpaired_.erase(it);
    --unpaired_total_;
  }
  ++trusted_;
  return true;
}

void Listener::bind(const firmware_config::AgentConfig& cfg) {
  // Started by kyso-agent.socket: systemd already listens for us (checked to be loopback).
  std::uint16_t activated_port = 0;
  if (const auto fds = detail::activated_sockets(activated_port); !fds.empty()) {
    for (const auto& s : fds) {
      auto a = std::make_unique<tcp::acceptor>(ioc_);
      a->assign(s.v6 ? tcp::v6() : tcp::v4(), static_cast<tcp::acceptor::native_handle_type>(s.fd));
      acceptors_.push_back(std::move(a));
    }
    port_ = activated_port;
    if (cfg.port != 0 && cfg.port != port_) {
      spdlog::info("socket activation: listening on systemd's port {} instead of {}", port_,
                   cfg.port);
    }
    return;
  }
  std::vector<std::uint16_t> ports;
  if (cfg.port == 0) {
    ports.push_back(0);
  } else {
    for (std::uint16_t i = 0; i <= firmware_config::kAgentPortFallbacks; ++i) {
      ports.push_back(static_cast<std::uint16_t>(cfg.port + i));
    }
  }
  for (auto p : ports) {
    beast::error_code ec;
    auto v4 = std::make_unique<tcp::acceptor>(ioc_);
    const tcp::endpoint ep4(net::ip::address_v4::loopback(), p);
    v4->open(ep4.protocol(), ec);
    if (!ec) v4->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) v4->bind(ep4, ec);
    if (!ec) v4->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::info("port {} unavailable ({}), trying the next", p, ec.message());
      continue;
    }
    port_ = v4->local_endpoint().port();
    acceptors_.push_back(std::move(v4));
    // [::1] on the same port; a machine without IPv6 keeps IPv4 only.
    auto v6 = std::make_unique<tcp::acceptor>(ioc_);
    const tcp::endpoint ep6(net::ip::address_v6::loopback(), port_);
    v6->open(ep6.protocol(), ec);
    if (!ec) v6->set_option(net::ip::v6_only(true), ec);
    if (!ec) v6->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) v6->bind(ep6, ec);
    if (!ec) v6->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::info("[::1]:{} not available ({}); IPv4 only", port_, ec.message());
    } else {
      acceptors_.push_back(std::move(v6));
    }
    return;
  }
  throw Error(ErrorCode::ConfigInvalid,
              "cannot listen on 127.0.0.1 port " + std::to_string(cfg.port) + " nor its fallbacks");
}

void Listener::start() {
  for (auto& a : acceptors_) do_accept(*a);
}

void Listener::do_accept(tcp::acceptor& a) {
  a.async_accept(net::make_strand(ioc_),
                 [self = shared_from_this(), &a](beast::error_code ec, tcp::socket s) {
                   self->on_accept(a, ec, std::move(s));
                 });
}

void Listener::on_accept(tcp::acceptor& a, beast::error_code ec, tcp::socket socket) {
  if (stopped_.load()) return;
  if (!ec) {
    beast::error_code e1;
    beast::error_code e2;
    const auto local = socket.local_endpoint(e1);
    const auto remote = socket.remote_endpoint(e2);
    const auto peer =
        (e1 || e2) ? PeerUser{false, "uid unknown"} : loopback_peer_user(local, remote);
    if (!peer.same_user) {
      // Another OS user on a shared machine (or a peer we cannot identify): not ours to serve.
      spdlog::warn("refused a connection from port {} ({})", remote.port(), peer.who);
      (void)gate_->refused(ErrorCode::OriginForbidden, {}, "peer " + peer.who, true);
      socket.close(e1);
    } else {
      // Events and answers go out as soon as they are ready: with Nagle's algorithm the tail of
      // a large answer (a batch's summary) waits for the page's delayed ACK, up to 40 ms.
      socket.set_option(tcp::no_delay(true), e1);
      if (tls_) {
        auto context = tls_->current();
        auto& ctx = *context;
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            shared_from_this(), std::move(context), std::move(socket), ctx)
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(shared_from_this(), nullptr, std::move(socket))
            ->run();
      }
    }
  }
  if (a.is_open()) do_accept(a);
}

void Listener::add(const std::shared_ptr<SessionBase>& s) {
  const std::lock_guard lock(sessions_mutex_);
  std::erase_if(sessions_, [](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
  sessions_.push_back(s);
}

void Listener::stop() noexcept {
  if (stopped_.exchange(true)) return;
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    const std::lock_guard lock(sessions_mutex_);
    for (const auto& w : sessions_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->shutdown();
  net::post(ioc_, [self = shared_from_this()] {
    beast::error_code ec;
    for (auto& a : self->acceptors_) a->close(ec);
  });
}

void Listener::finish() noexcept {
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    const std::lock_guard lock(sessions_mutex_);
    for (const auto& w : sessions_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
    sessions_.clear();
  }
  for (const auto& s : live) s->abandon();
}

}  // namespace kyso::agent::transport
