// The appliance's HTTPS transport: Boost.Beast sessions in the examples' style (a strand per
// connection, do_x/on_x pairs, one write in flight), TLS 1.2+ only, a body limit and timeouts.
// Requests are handled on a worker pool and the answers posted back to the session's strand.
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <thread>

#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/random.hpp"
#include "kyso/pkcs11/library.hpp"
#include "service.hpp"

namespace kyso::appliance {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, ssl::context& ctx, Service& service, asio::thread_pool& workers,
          const ApplianceLimits& limits, std::shared_ptr<std::atomic<std::size_t>> open)
      : stream_(std::move(socket), ctx),
        service_(service),
        workers_(workers),
        limits_(limits),
        open_(std::move(open)) {}
  ~Session() { --*open_; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::on_run, shared_from_this()));
  }

 private:
  void on_run() {
    beast::get_lowest_layer(stream_).expires_after(limits_.request_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&Session::on_handshake, shared_from_this()));
  }

  void on_handshake(beast::error_code ec) {
    if (ec) return;  // includes clients offering TLS < 1.2: OpenSSL already sent the alert
    do_read();
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(limits_.max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    // The first request of a connection gets the request timeout; later ones the idle timeout.
    beast::get_lowest_layer(stream_).expires_after(first_ ? limits_.request_timeout
                                                          : limits_.idle_timeout);
    first_ = false;
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      drain_ = true;
      return send(error_response(
          {413, "invalid_request",
           "Request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes"}));
    }
    if (ec == http::error::header_limit) {
      keep_alive_ = false;
      drain_ = true;
      return send(error_response({431, "invalid_request", "Request headers too large"}));
    }
    if (ec) return;
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(req.method_string());
    request->target = std::string(req.target());
    request->authorization = std::string(req[http::field::authorization]);
    request->content_type = std::string(req[http::field::content_type]);
    request->request_id = request_id(req["X-Request-Id"]);
    request->body = std::move(req.body());
    parser_.reset();
    // No read while the request is handled: one request in flight per connection.
    beast::get_lowest_layer(stream_).expires_never();
    request_id_ = request->request_id;
    asio::post(workers_, [self = shared_from_this(), request] {
      HttpResponse r = self->service_.handle(*request);
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
    });
  }

  void send(HttpResponse r) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<http::status>(r.status));
    res_.set(http::field::server, "kyso-appliance");
    res_.set(http::field::cache_control, "no-store");
    if (!r.body.empty()) res_.set(http::field::content_type, "application/json");
    if (r.bearer_challenge) res_.set(http::field::www_authenticate, "Bearer");
    if (!request_id_.empty()) res_.set("X-Request-Id", request_id_);
    res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(limits_.request_timeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    if (drain_) return do_drain();
    if (!keep_alive_) return do_close();
    do_read();
  }

  // After refusing an oversized request the client may still be sending it. Closing at once
  // would reset the connection and could destroy our answer in the client's buffers, so read
  // and discard for a short while (bounded in time and bytes) before closing.
  void do_drain() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    stream_.async_read_some(asio::buffer(discard_),
                            beast::bind_front_handler(&Session::on_drain, shared_from_this()));
  }

  void on_drain(beast::error_code ec, std::size_t bytes) {
    drained_ += bytes;
    if (ec || drained_ > 4 * limits_.max_body_bytes + kHeaderLimit) {
      beast::error_code ignored;
      beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    do_drain();
  }

  void do_close() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown(beast::bind_front_handler(&Session::on_shutdown, shared_from_this()));
  }

  void on_shutdown(beast::error_code /*ec*/) {}

  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  Service& service_;
  asio::thread_pool& workers_;
  const ApplianceLimits& limits_;
  std::string request_id_;
  bool keep_alive_ = true;
  bool first_ = true;
  bool drain_ = false;
  std::size_t drained_ = 0;
  std::shared_ptr<std::atomic<std::size_t>> open_;
  std::array<char, 16 * 1024> discard_{};
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, ssl::context& ctx, tcp::endpoint endpoint, Service& service,
           asio::thread_pool& workers, const ApplianceLimits& limits)
      : ioc_(ioc),
        ctx_(ctx),
        acceptor_(asio::make_strand(ioc)),
        service_(service),
        workers_(workers),
        limits_(limits) {
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
    if (!ec) {
      // Over the limit the connection is closed before the TLS handshake costs anything.
      if (open_->load() < limits_.max_connections) {
        ++*open_;
        std::make_shared<Session>(std::move(socket), ctx_, service_, workers_, limits_, open_)
            ->run();
      }
    }
    do_accept();
  }

  asio::io_context& ioc_;
  ssl::context& ctx_;
  tcp::acceptor acceptor_;
  Service& service_;
  asio::thread_pool& workers_;
  const ApplianceLimits& limits_;
  std::shared_ptr<std::atomic<std::size_t>> open_ = std::make_shared<std::atomic<std::size_t>>(0);
};

ssl::context make_tls(const ApplianceConfig& c) {
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
    ctx.use_certificate_chain_file(c.tls_cert_file);
    ctx.use_private_key_file(c.tls_key_file, ssl::context::pem);
  } catch (const boost::system::system_error& e) {
    throw Error(ErrorCode::ConfigInvalid, "TLS certificate or key: " + std::string(e.what()));
  }
  return ctx;
}

}  // namespace

struct Appliance::Impl {
  explicit Impl(ApplianceConfig c)
      : config(std::move(c)),
        library(pkcs11::ModuleConfig{config.pkcs11_modules, false, false}),
        // A node never migrates a shared database on its own: `kyso-appliance migrate` does.
        store(
            open_state_store(config.state_db.string(), !is_postgres_url(config.state_db.string()))),
        tls(make_tls(config)),
        workers(config.limits.workers),
        sign_pool(config.limits.sign_threads),
        service(config, *store, library, sign_pool) {
    for (const auto& m : library.modules()) {
      if (!m.loaded) throw Error(ErrorCode::ModuleLoadFailed, m.path + ": " + m.error);
    }
  }

  ApplianceConfig config;
  pkcs11::Library library;
  std::unique_ptr<StateStore> store;
  ssl::context tls;
  asio::thread_pool workers;
  asio::thread_pool sign_pool;
  Service service;
  asio::io_context ioc;
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<asio::steady_timer> purge_timer;
  std::atomic<bool> stopped{false};
  std::mutex wait_mutex;
  std::condition_variable wait_cv;

  void schedule_purge() {
    purge_timer->expires_after(std::chrono::minutes(1));
    purge_timer->async_wait([this](beast::error_code ec) {
      if (ec) return;
      asio::post(workers, [this] {
        try {
          store->purge(std::chrono::system_clock::now());
        } catch (const Error&) {  // next minute again
        }
      });
      schedule_purge();
    });
  }
};

Appliance::Appliance(ApplianceConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Appliance::~Appliance() {
  stop();
}

void Appliance::start() {
  auto& i = *impl_;
  const auto address = asio::ip::make_address(i.config.listen_address);
  i.listener = std::make_shared<Listener>(i.ioc, i.tls, tcp::endpoint{address, i.config.port},
                                          i.service, i.workers, i.config.limits);
  i.listener->run();
  i.purge_timer = std::make_unique<asio::steady_timer>(i.ioc);
  i.schedule_purge();
  i.work.emplace(i.ioc.get_executor());
  i.store->audit("-", "appliance.start", "port " + std::to_string(i.listener->port()));
  for (unsigned t = 0; t < i.config.limits.io_threads; ++t) {
    i.threads.emplace_back([&ioc = i.ioc] { ioc.run(); });
  }
}

void Appliance::stop() noexcept {
  auto& i = *impl_;
  if (i.stopped.exchange(true)) return;
  if (i.listener) i.listener->close();
  i.work.reset();
  i.ioc.stop();
  for (auto& t : i.threads) t.join();
  i.threads.clear();
  i.workers.join();
  i.sign_pool.join();
  { const std::lock_guard lock(i.wait_mutex); }
  i.wait_cv.notify_all();
}

void Appliance::wait() {
  auto& i = *impl_;
  std::unique_lock lock(i.wait_mutex);
  i.wait_cv.wait(lock, [&] { return i.stopped.load(); });
}

std::uint16_t Appliance::port() const noexcept {
  return impl_->listener ? impl_->listener->port() : 0;
}

StateStore& Appliance::store() noexcept {
  return *impl_->store;
}

std::uint64_t Appliance::requests() const noexcept {
  return impl_->service.requests();
}

}  // namespace kyso::appliance
