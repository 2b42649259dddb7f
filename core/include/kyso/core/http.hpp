#pragma once
/// @file
/// Kyso's one HTTP(S) client (Boost.Beast over OpenSSL, synchronous, a deadline on every step):
/// the CSC client's keep-alive HTTPS connection, TSA and OCSP requests, CRL downloads and
/// `kyso doctor`'s probes all go through it. Callers run it on a worker thread.
///
/// Retries: a request that cannot have reached the server (resolve or connect failure, a TLS
/// handshake failure, a kept-alive connection found closed before sending) is retried whatever
/// it is; one that may have been processed is sent again only when the caller says it is
/// idempotent. The request's body and Authorization header (a PIN, OTP or password) are wiped
/// after use.

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace boost::asio::ssl {
class context;
}

namespace kyso::http {

struct Options {
  std::chrono::milliseconds connect_timeout{10'000};  ///< resolve, connect and TLS handshake
  std::chrono::milliseconds request_timeout{60'000};  ///< send the request, read the answer
  /// A kept-alive connection idle for longer is reopened before a request that must not be sent
  /// twice (kept below the servers' idle timeouts, so such a request never meets a closing
  /// socket).
  std::chrono::milliseconds max_idle{10'000};
  int retries = 0;      ///< extra attempts where safe (see above)
  std::string ca_file;  ///< https: an extra trust anchor (PEM); empty: the system store
  /// https: check the server's certificate and name. Off only to read a public status whose
  /// trust is checked elsewhere (the doctor's probe of the local agent).
  bool verify_peer = true;
  std::size_t body_limit = 64UL * 1024 * 1024;
  std::string user_agent = "kyso";
};

/// "http://" or "https://", a host (a name, IPv4 or [IPv6]), an optional port, an optional path.
struct Url {
  bool tls = false;
  std::string host;  ///< without brackets
  std::string port;  ///< "80" / "443" when not given
  std::string path;  ///< without a trailing slash; "" for the root
  /// Throws Error(ConfigInvalid) for anything else.
  static Url parse(std::string_view url);
};

/// The TLS client context of https clients that verify the peer with `ca_file` (see Options):
/// the system's trust anchors and that file, parsed once per process and shared by every such
/// client, and parsed again only when one of the files changes. Parsing the system bundle (about
/// 150 certificates) costs tens of milliseconds, which every client had paid: each of a remote
/// batch's connections, each https TSA, OCSP or CRL request. Throws Error(ConfigInvalid) for an
/// unreadable `ca_file`. Thread-safe.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context> trust_context(const std::string& ca_file);

struct Response {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

using Headers = std::map<std::string, std::string>;

/// One server, one connection at a time, reopened when needed. Not thread-safe.
class Client {
 public:
  /// `base_url`: the server and the path every request's target is appended to.
  Client(std::string_view base_url, Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) = delete;
  Client& operator=(Client&&) = delete;

  /// Sends `method` ("GET", "POST") for the base path + `target` with `body` (and a
  /// Content-Type header when `content_type` is given) and returns the answer, whatever its
  /// status. Throws Error(RemoteUnreachable) "host:port: why" when no answer came.
  Response request(std::string_view method, std::string_view target, std::string body,
                   std::string_view content_type, const Headers& headers, bool idempotent);

  [[nodiscard]] const Url& url() const noexcept;
  [[nodiscard]] std::size_t round_trips() const noexcept { return round_trips_; }
  [[nodiscard]] std::size_t connections_opened() const noexcept { return connections_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::size_t round_trips_ = 0;
  std::size_t connections_ = 0;
};

}  // namespace kyso::http
