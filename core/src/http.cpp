// Kyso's HTTP(S) client: Beast over a TCP or TLS stream, one call at a time, a deadline on each
// step. Each step is an asynchronous operation run to completion on the client's own io_context:
// beast::tcp_stream's timeouts apply only to asynchronous operations, so a synchronous read from
// a server that accepted the connection and then stopped answering would wait forever.
#include "kyso/core/http.hpp"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"

namespace kyso::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Failures before the request could reach the server's handler: always safe to retry.
struct NotSent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

Url Url::parse(std::string_view url) {
  static const std::regex re(
      R"(^(https?)://(\[[0-9a-fA-F:.]+\]|[^/:?#\[\]]+)(?::(\d{1,5}))?(/[^#]*)?$)",
      std::regex::icase);
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(url.begin(), url.end(), m, re)) {
    throw Error(
        ErrorCode::ConfigInvalid,
        "not an http:// or https:// URL (scheme://host[:port][/path]): " + std::string(url));
  }
  Url u;
  u.tls = m[1].length() == 5;
  u.host = m[2].str();
  if (u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  u.port = m[3].matched ? m[3].str() : (u.tls ? "443" : "80");
  u.path = m[4].matched ? m[4].str() : "";
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  return u;
}

namespace {

std::shared_ptr<ssl::context> client_context() {
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
  return tls;
}

// What a trust context was made from: the files' identity and times, "" for a missing one.
std::string stamp(const char* path) {
  return platform::file_stamp(path);
}

}  // namespace

std::shared_ptr<ssl::context> trust_context(const std::string& ca_file) {
  struct Entry {
    std::string stamps;
    std::shared_ptr<ssl::context> context;
  };
  static std::mutex mutex;
  static std::map<std::string, Entry> cache;  // by ca_file; a handful at most
  const std::string stamps = stamp(X509_get_default_cert_file()) + "|" +
                             stamp(X509_get_default_cert_dir()) + "|" +
                             (ca_file.empty() ? std::string() : stamp(ca_file.c_str()));
  const std::lock_guard lock(mutex);
  auto& e = cache[ca_file];
  if (e.context && e.stamps == stamps) return e.context;
  auto tls = client_context();
  tls->set_default_verify_paths();
  if (!ca_file.empty()) {
    try {
      tls->load_verify_file(ca_file);
    } catch (const boost::system::system_error& err) {
      throw Error(ErrorCode::ConfigInvalid, "CA file " + ca_file + ": " + err.what());
    }
  }
  tls->set_verify_mode(ssl::verify_peer);
  e = {stamps, std::move(tls)};
  return e.context;
}

struct Client::Impl {
  Impl(std::string_view base, Options o) : options(std::move(o)), url(Url::parse(base)) {
    if (!url.tls) return;
    if (options.verify_peer) {
      tls = trust_context(options.ca_file);
    } else {
      tls = client_context();
      tls->set_verify_mode(ssl::verify_none);
    }
  }

  [[nodiscard]] bool open() const noexcept { return plain.has_value() || secure.has_value(); }

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  void close() noexcept {
    if (open()) {
      beast::error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      lowest().close();
    }
    plain.reset();
    secure.reset();
    buffer.consume(buffer.size());  // nothing of an old connection may reach the next parse
  }

  void connect() {
    close();
    beast::error_code ec;
    if (tls) {
      secure.emplace(ioc, *tls);
      // SNI and host name verification (RFC 6125) for names; IP addresses are checked as such.
      (void)asio::ip::make_address(url.host, ec);
      if (ec && SSL_ctrl(secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(url.host.c_str())) != 1) {
        throw NotSent("cannot set SNI");
      }
      if (options.verify_peer) secure->set_verify_callback(ssl::host_name_verification(url.host));
    } else {
      plain.emplace(ioc);
    }
    auto& stream = lowest();
    const auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) throw NotSent("resolve " + url.host + ": " + ec.message());
    stream.expires_after(options.connect_timeout);
    ec = complete([&](auto done) { stream.async_connect(endpoints, done); });
    if (ec) throw NotSent("connect " + url.host + ":" + url.port + ": " + ec.message());
    stream.socket().set_option(tcp::no_delay(true));
    if (secure) {
      ec = complete([&](auto done) { secure->async_handshake(ssl::stream_base::client, done); });
      if (ec) throw NotSent("TLS handshake with " + url.host + ": " + ec.message());
    }
  }

  // Starts one asynchronous operation with `start(handler)` and runs the io_context until it
  // completes; the stream's deadline cancels it (beast::error::timeout) when the peer is silent.
  template <typename Start>
  beast::error_code complete(Start&& start) {
    beast::error_code result = asio::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  template <typename Fn>
  auto on_stream(Fn&& fn) {
    return secure ? fn(*secure) : fn(*plain);
  }

  Options options;
  Url url;
  asio::io_context ioc;
  std::shared_ptr<ssl::context> tls;  ///< shared with other clients: never changed here
  tcp::resolver resolver{ioc};
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  Clock::time_point last_used{};
};

Client::Client(std::string_view base_url, Options options)
    : impl_(std::make_unique<Impl>(base_url, std::move(options))) {}

Client::~Client() {
  impl_->close();
}

const Url& Client::url() const noexcept {
  return impl_->url;
}

Response Client::request(std::string_view method, std::string_view target, std::string body,
                         std::string_view content_type, const Headers& headers, bool idempotent) {
  auto& i = *impl_;
  std::string path = i.url.path + std::string(target);
  if (path.empty()) path = "/";
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), path, 11};
  // The port belongs in Host when it is not the scheme's default (RFC 9110 7.2).
  const bool default_port = i.url.port == (i.url.tls ? "443" : "80");
  const std::string host =
      i.url.host.find(':') != std::string::npos ? "[" + i.url.host + "]" : i.url.host;
  req.set(bhttp::field::host, default_port ? host : host + ":" + i.url.port);
  req.set(bhttp::field::user_agent, i.options.user_agent);
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = std::move(body);
  req.keep_alive(true);
  req.prepare_payload();
  // The request's copies of the body (a PIN or OTP) and of the Authorization header (a
  // password) are wiped whatever happens. Beast writes both straight from these buffers.
  struct Wipe {
    bhttp::request<bhttp::string_body>& r;
    ~Wipe() {
      OPENSSL_cleanse(r.body().data(), r.body().size());
      if (const auto it = r.find(bhttp::field::authorization); it != r.end()) {
        const auto v = it->value();
        OPENSSL_cleanse(const_cast<char*>(v.data()), v.size());
      }
    }
  } wipe{req};

  std::string last_error;
  for (int attempt = 0; attempt <= i.options.retries; ++attempt) {
    try {
      const bool stale = Clock::now() - i.last_used > i.options.max_idle;
      if (!i.open() || (stale && !idempotent)) {
        i.connect();
        ++connections_;
      }
      i.lowest().expires_after(i.options.request_timeout);
      beast::error_code ec = i.on_stream([&](auto& s) {
        return i.complete([&](auto done) { bhttp::async_write(s, req, done); });
      });
      // Nothing of the request was accepted by the server's parser yet.
      if (ec) throw NotSent("send: " + ec.message());
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(i.options.body_limit);
      ec = i.on_stream([&](auto& s) {
        return i.complete([&](auto done) { bhttp::async_read(s, i.buffer, parser, done); });
      });
      if (ec) {
        i.close();
        // The server may have processed the request: only an idempotent one is sent again.
        last_error =
            "reading the answer to " + std::string(method) + " " + path + ": " + ec.message();
        if (!idempotent) break;
        continue;
      }
      ++round_trips_;
      i.last_used = Clock::now();
      auto res = parser.release();
      if (!res.keep_alive()) i.close();
      Response out;
      out.status = static_cast<unsigned>(res.result_int());
      out.content_type = std::string(res[bhttp::field::content_type]);
      out.body = std::move(res.body());
      return out;
    } catch (const NotSent& e) {
      i.close();
      last_error = e.what();
    }
  }
  throw Error(ErrorCode::RemoteUnreachable, i.url.host + ":" + i.url.port + ": " + last_error);
}

}  // namespace kyso::http
