// The client's HTTPS connection: synchronous Beast over OpenSSL with a deadline on each step.
// Callers run it on a worker thread (the agent never calls it from an io thread).
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <regex>

#include "kyso/core/error.hpp"
#include "kyso/remote/csc_client.hpp"

namespace kyso::remote {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Url {
  std::string host;
  std::string port;
  std::string path;  // without a trailing slash
};

Url parse_url(const std::string& url) {
  static const std::regex re(R"(^https://(\[[0-9a-fA-F:.]+\]|[^/:]+)(?::(\d+))?(/.*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, re)) {
    throw Error(ErrorCode::ConfigInvalid,
                "remote service URL must be https://host[:port]/path: " + url);
  }
  Url u{m[1].str(), m[2].matched ? m[2].str() : "443", m[3].matched ? m[3].str() : ""};
  if (u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  return u;
}

// Failures before the request could reach the server's handler: always safe to retry.
struct NotSent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

struct HttpsConnection::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)), url(parse_url(options.base_url)) {
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_default_verify_paths();
    if (!options.ca_file.empty()) {
      try {
        tls.load_verify_file(options.ca_file);
      } catch (const boost::system::system_error& e) {
        throw Error(ErrorCode::ConfigInvalid, "CA file " + options.ca_file + ": " + e.what());
      }
    }
    tls.set_verify_mode(ssl::verify_peer);
  }

  void close() noexcept {
    if (stream) {
      beast::error_code ec;
      beast::get_lowest_layer(*stream).socket().shutdown(tcp::socket::shutdown_both, ec);
      beast::get_lowest_layer(*stream).close();
    }
    stream.reset();
    buffer.consume(buffer.size());  // nothing of an old connection may reach the next parse
  }

  void connect() {
    close();
    stream.emplace(ioc, tls);
    // SNI and host name verification (RFC 6125) for names; IP addresses are checked as such.
    beast::error_code ec;
    const auto addr = asio::ip::make_address(url.host, ec);
    if (ec && SSL_ctrl(stream->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                       TLSEXT_NAMETYPE_host_name, const_cast<char*>(url.host.c_str())) != 1) {
      throw NotSent("cannot set SNI");
    }
    stream->set_verify_callback(ssl::host_name_verification(url.host));
    auto& tcp_stream = beast::get_lowest_layer(*stream);
    tcp_stream.expires_after(options.connect_timeout);
    const auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) throw NotSent("resolve " + url.host + ": " + ec.message());
    tcp_stream.connect(endpoints, ec);
    if (ec) throw NotSent("connect " + url.host + ":" + url.port + ": " + ec.message());
    tcp_stream.socket().set_option(tcp::no_delay(true));
    stream->handshake(ssl::stream_base::client, ec);
    if (ec) throw NotSent("TLS handshake with " + url.host + ": " + ec.message());
    (void)addr;
  }

  ClientOptions options;
  Url url;
  asio::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  tcp::resolver resolver{ioc};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  Clock::time_point last_used{};
};

HttpsConnection::HttpsConnection(ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpsConnection::~HttpsConnection() {
  impl_->close();
}

HttpResult HttpsConnection::post(const std::string& method, const std::string& body,
                                 const std::map<std::string, std::string>& headers,
                                 bool idempotent) {
  auto& i = *impl_;
  http::request<http::string_body> req{http::verb::post, i.url.path + "/" + method, 11};
  req.set(http::field::host, i.url.host);
  req.set(http::field::user_agent, "kyso-csc-client");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.keep_alive(true);
  req.prepare_payload();
  // The request's copies of the body (a PIN or OTP in authorize) and of the Authorization header
  // (a password in auth/login) are wiped whatever happens. Beast writes both straight from
  // these buffers, without another copy.
  struct Wipe {
    http::request<http::string_body>& r;
    ~Wipe() {
      OPENSSL_cleanse(r.body().data(), r.body().size());
      if (const auto it = r.find(http::field::authorization); it != r.end()) {
        const auto v = it->value();
        OPENSSL_cleanse(const_cast<char*>(v.data()), v.size());
      }
    }
  } wipe{req};

  std::string last_error;
  for (int attempt = 0; attempt <= i.options.retries; ++attempt) {
    try {
      const bool stale = Clock::now() - i.last_used > i.options.max_idle;
      if (!i.stream || (stale && !idempotent)) {
        i.connect();
        ++connections_;
      }
      auto& tcp_stream = beast::get_lowest_layer(*i.stream);
      tcp_stream.expires_after(i.options.request_timeout);
      beast::error_code ec;
      http::write(*i.stream, req, ec);
      if (ec) {
        // Nothing of the request was accepted by the server's parser yet.
        throw NotSent("send: " + ec.message());
      }
      http::response_parser<http::string_body> parser;
      parser.body_limit(64UL * 1024 * 1024);
      http::read(*i.stream, i.buffer, parser, ec);
      if (ec) {
        i.close();
        // The server may have processed the request: only a read-only one is sent again.
        last_error = "reading the answer to " + method + ": " + ec.message();
        if (!idempotent) break;
        continue;
      }
      ++round_trips_;
      i.last_used = Clock::now();
      auto res = parser.release();
      if (!res.keep_alive()) i.close();
      return {static_cast<unsigned>(res.result_int()), std::move(res.body())};
    } catch (const NotSent& e) {
      i.close();
      last_error = e.what();
    }
  }
  throw Error(ErrorCode::RemoteUnreachable, i.url.host + ":" + i.url.port + ": " + last_error);
}

}  // namespace kyso::remote
