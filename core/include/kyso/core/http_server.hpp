#pragma once
/// @file
/// The HTTP(S) server skeleton shared by Kyso's network services (kyso-appliance, kyso-verifyd):
/// Boost.Beast sessions in the examples' style (a strand per connection, one request in flight,
/// one write in flight), TLS 1.2+ with forward-secret AEAD suites (or plain HTTP behind a
/// TLS-terminating proxy), a header and body limit enforced while reading (an oversized body is
/// refused as it streams in, never buffered), request and idle timeouts, a connection limit, and
/// an in-flight limit answered at once with 503. Requests are handled on a worker pool; the
/// service only sees a request and returns a response.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kyso {

/// What a handler sees of a request (the body already complete and within the limit).
struct HttpRequest {
  std::string method;
  std::string target;  ///< path and query, as sent
  std::string authorization;
  std::string content_type;
  std::string accept_language;
  std::string request_id;  ///< X-Request-Id from the client when a plain token, else made up
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";  ///< sent when the body is not empty
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
  // X-Request-Id is added by the server (the request's, so logs on both sides tie up).
};

struct HttpServerOptions {
  std::string name = "kyso";  ///< the Server header
  std::string listen_address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port (see HttpServer::port())
  /// PEM chain (leaf first) and key. Both empty: plain HTTP (only behind a TLS proxy).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::size_t max_body_bytes = 1024UL * 1024;  ///< larger bodies are refused with 413
  std::chrono::seconds request_timeout{30};    ///< reading a request, writing a response
  std::chrono::seconds idle_timeout{30};       ///< between keep-alive requests
  std::size_t max_connections = 512;           ///< further connections are closed at accept
  unsigned io_threads = 2;
  unsigned workers = 4;
  /// Requests handled at once (queued on the workers included); beyond it the request is
  /// answered 503 on the io thread without reaching a worker. 0: no limit.
  std::size_t max_in_flight = 0;
};

struct HttpHandlers {
  /// Called on a worker thread; must not throw.
  std::function<HttpResponse(HttpRequest&)> handle;
  /// The response for a request refused by the server itself: 413 (body too large), 431
  /// (headers too large) or 503 (max_in_flight reached). Called on an io thread; must not throw.
  std::function<HttpResponse(unsigned status, const std::string& why)> refuse;
};

class HttpServer {
 public:
  /// Reads the TLS files (Error(ConfigInvalid) when they are unusable).
  HttpServer(HttpServerOptions options, HttpHandlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  HttpServer(HttpServer&&) = delete;
  HttpServer& operator=(HttpServer&&) = delete;

  /// Binds, listens and starts the io threads and workers; returns at once.
  void start();
  /// Stops accepting, drops connections and joins every thread. Idempotent.
  void stop() noexcept;
  /// The bound port (useful with port 0).
  [[nodiscard]] std::uint16_t port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kyso
