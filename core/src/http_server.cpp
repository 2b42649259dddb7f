// Beast sessions in the examples' style: a strand per connection, do_x/on_x pairs, one request
// in flight per connection and one write in flight. The same session serves TLS and plain TCP.
#include "kyso/core/http_server.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>
#include <thread>
#include <type_traits>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"

namespace kyso {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The client's X-Request-Id when it is a plain token (it goes into logs), else a fresh one.
std::string request_id(std::string_view given) {
  const bool plain = !given.empty() && given.size() <= 64 && std::ranges::all_of(given, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
  if (plain) return std::string(given);
  std::array<std::uint8_t, 12> raw{};
  random_bytes(raw);
  return "srv-" + to_hex(raw);
}

// What every session of one server shares.
struct Shared {
  Shared(HttpServerOptions o, HttpHandlers h, asio::thread_pool& w)
      : options(std::move(o)), handlers(std::move(h)), workers(w) {}
  HttpServerOptions options;
  HttpHandlers handlers;
  asio::thread_pool& workers;
  std::atomic<std::size_t> open{0};
  std::atomic<std::size_t> in_flight{0};
};

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  template <class... Args>
  Session(std::shared_ptr<Shared> shared, tcp::socket&& socket, Args&... tls)
      : stream_(std::move(socket), tls...), shared_(std::move(shared)) {}
  ~Session() { --shared_->open; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::on_run, this->shared_from_this()));
  }

 private:
  const HttpServerOptions& options() const { return shared_->options; }
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  void on_run() {
    if constexpr (kTls) {
      lowest().expires_after(options().request_timeout);
      stream_.async_handshake(
          ssl::stream_base::server,
          beast::bind_front_handler(&Session::on_handshake, this->shared_from_this()));
    } else {
      do_read();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (ec) return;  // includes clients offering TLS < 1.2: OpenSSL already sent the alert
    do_read();
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(options().max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    // The first request of a connection gets the request timeout; later ones the idle timeout.
    lowest().expires_after(first_ ? options().request_timeout : options().idle_timeout);
    first_ = false;
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void refuse(unsigned status, const std::string& why, bool drain) {
    keep_alive_ = false;
    drain_ = drain;
    send(shared_->handlers.refuse(status, why));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return do_close();
    // Refused as soon as the header announces it or the streamed body passes the limit: the
    // body is never held beyond max_body_bytes.
    if (ec == http::error::body_limit) {
      return refuse(
          413, "Request body larger than " + std::to_string(options().max_body_bytes) + " bytes",
          true);
    }
    if (ec == http::error::header_limit) return refuse(431, "Request headers too large", true);
    if (ec) return;
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    const std::size_t limit = options().max_in_flight;
    if (limit != 0 && ++shared_->in_flight > limit) {
      --shared_->in_flight;
      parser_.reset();
      keep_alive_ = false;
      return send(shared_->handlers.refuse(503, "Too many requests in progress; try again"));
    }
    if (limit == 0) ++shared_->in_flight;
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(req.method_string());
    request->target = std::string(req.target());
    request->authorization = std::string(req[http::field::authorization]);
    request->content_type = std::string(req[http::field::content_type]);
    request->accept_language = std::string(req[http::field::accept_language]);
    request->request_id = request_id(req["X-Request-Id"]);
    request_id_ = request->request_id;
    request->body = std::move(req.body());
    parser_.reset();
    // No read while the request is handled: one request in flight per connection.
    lowest().expires_never();
    asio::post(shared_->workers, [self = this->shared_from_this(), request] {
      HttpResponse r = self->shared_->handlers.handle(*request);
      request->body.clear();
      request->body.shrink_to_fit();
      --self->shared_->in_flight;
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
    });
  }

  void send(HttpResponse r) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<http::status>(r.status));
    res_.set(http::field::server, options().name);
    res_.set(http::field::cache_control, "no-store");
    if (!r.body.empty()) res_.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res_.set(name, value);
    if (!request_id_.empty()) res_.set("X-Request-Id", request_id_);
    request_id_.clear();
    res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    lowest().expires_after(options().request_timeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    res_ = {};
    if (ec) return;
    if (drain_) return do_drain();
    if (!keep_alive_) return do_close();
    do_read();
  }

  // After refusing an oversized request the client may still be sending it. Closing at once
  // would reset the connection and could destroy our answer in the client's buffers, so read
  // and discard for a short while (bounded in time and bytes) before closing.
  void do_drain() {
    lowest().expires_after(std::chrono::seconds(2));
    stream_.async_read_some(
        asio::buffer(discard_),
        beast::bind_front_handler(&Session::on_drain, this->shared_from_this()));
  }

  void on_drain(beast::error_code ec, std::size_t bytes) {
    drained_ += bytes;
    if (ec || drained_ > 4 * options().max_body_bytes + kHeaderLimit) {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    do_drain();
  }

  void do_close() {
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown(
          beast::bind_front_handler(&Session::on_shutdown, this->shared_from_this()));
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  void on_shutdown(beast::error_code /*ec*/) {}

  Stream stream_;
  std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string request_id_;
  bool keep_alive_ = true;
  bool first_ = true;
  bool drain_ = false;
  std::size_t drained_ = 0;
  std::array<char, 16 * 1024> discard_{};
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, ssl::context* tls, const tcp::endpoint& endpoint,
           std::shared_ptr<Shared> shared)
      : ioc_(ioc), tls_(tls), acceptor_(asio::make_strand(ioc)), shared_(std::move(shared)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  void run() { do_accept(); }
  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }
  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  void do_accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    // Over the limit the connection is closed before the TLS handshake costs anything.
    if (!ec && shared_->open.load() < shared_->options.max_connections) {
      ++shared_->open;
      // An answer is written as several TLS records; with Nagle the last segment waits for
      // the client's (delayed) ACK of the first, up to 40 ms per answer (issue 13).
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (tls_ != nullptr) {
        std::make_shared<Session<TlsStream>>(shared_, std::move(socket), *tls_)->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(shared_, std::move(socket))->run();
      }
    }
    do_accept();
  }

  asio::io_context& ioc_;
  ssl::context* tls_;
  tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

std::optional<ssl::context> make_tls(const HttpServerOptions& o) {
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) return std::nullopt;
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use | ssl::context::no_compression);
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    throw Error(ErrorCode::Internal, "cannot require TLS 1.2");
  }
  // Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3's are all fine).
  SSL_CTX_set_cipher_list(ctx.native_handle(),
                          "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1");
  try {
    ctx.use_certificate_chain_file(o.tls_cert_file);
    ctx.use_private_key_file(o.tls_key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    throw Error(ErrorCode::ConfigInvalid, "TLS certificate or key: " + std::string(e.what()));
  }
  return ctx;
}

}  // namespace

struct HttpServer::Impl {
  Impl(HttpServerOptions o, HttpHandlers h)
      : tls(make_tls(o)),
        workers(o.workers),
        shared(std::make_shared<Shared>(std::move(o), std::move(h), workers)) {}

  std::optional<ssl::context> tls;
  asio::thread_pool workers;
  std::shared_ptr<Shared> shared;
  asio::io_context ioc;
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::atomic<bool> stopped{false};
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handlers))) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  auto& i = *impl_;
  const auto& o = i.shared->options;
  const auto address = asio::ip::make_address(o.listen_address);
  i.listener = std::make_shared<Listener>(i.ioc, i.tls ? &*i.tls : nullptr,
                                          tcp::endpoint{address, o.port}, i.shared);
  i.listener->run();
  i.work.emplace(i.ioc.get_executor());
  for (unsigned t = 0; t < o.io_threads; ++t) {
    i.threads.emplace_back([&ioc = i.ioc] { ioc.run(); });
  }
}

void HttpServer::stop() noexcept {
  auto& i = *impl_;
  if (i.stopped.exchange(true)) return;
  if (i.listener) i.listener->close();
  i.work.reset();
  i.ioc.stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
  i.workers.join();
}

std::uint16_t HttpServer::port() const noexcept {
  return impl_->listener ? impl_->listener->port() : 0;
}

}  // namespace kyso
