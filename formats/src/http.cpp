#include "http.hpp"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcntl.h>
#include <array>
#include <cerrno>
#include <cstring>

namespace kyso::formats::detail {
namespace {

// Connects within `timeout`; returns the fd or -1 with `error` set.
int connect_with_timeout(const std::string& host, const std::string& port,
                         std::chrono::seconds timeout, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::poll(&p, 1, static_cast<int>(timeout.count() * 1000)) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      error =
          so_error != 0 ? std::string("connect: ") + std::strerror(so_error) : "connect: timed out";
      ::close(fd);
      fd = -1;
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    // Blocking from here on, but never longer than the timeout per read or write.
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  ::freeaddrinfo(res);
  return fd;
}

}  // namespace

HttpResult http_request(const std::string& url, const Bytes* body, const char* content_type,
                        const char* expected_type, std::chrono::seconds timeout) {
  HttpResult r;
  char* host_raw = nullptr;
  char* port_raw = nullptr;
  char* path_raw = nullptr;
  int tls = 0;
  if (OSSL_HTTP_parse_url(url.c_str(), &tls, nullptr, &host_raw, &port_raw, nullptr, &path_raw,
                          nullptr, nullptr) != 1) {
    openssl_error();
    r.error = "not a URL: " + url;
    return r;
  }
  const std::string host(host_raw), port(port_raw), path(path_raw);
  OPENSSL_free(host_raw);
  OPENSSL_free(port_raw);
  OPENSSL_free(path_raw);
  if (tls != 0) {
    r.error = "https is not supported for " + url + " (TSA/OCSP/CRL use plain http)";
    return r;
  }
  const int fd = connect_with_timeout(host, port, timeout, r.error);
  if (fd < 0) return r;
  BioPtr conn(BIO_new_socket(fd, BIO_CLOSE));
  ERR_clear_error();
  BioPtr req;
  if (body != nullptr) req.reset(BIO_new_mem_buf(body->data(), static_cast<int>(body->size())));
  BIO* resp = OSSL_HTTP_transfer(nullptr, host.c_str(), port.c_str(), path.c_str(), 0, nullptr,
                                 nullptr, conn.get(), conn.get(), nullptr, nullptr, 0, nullptr,
                                 body != nullptr ? content_type : nullptr, req.get(), expected_type,
                                 0, 16U << 20U, static_cast<int>(timeout.count()), 0);
  if (resp == nullptr) {
    r.error = openssl_error();
    return r;
  }
  Bytes out;
  std::array<unsigned char, 8192> buf{};
  int n = 0;
  while ((n = BIO_read(resp, buf.data(), static_cast<int>(buf.size()))) > 0) {
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  // The response BIO is owned by us only when OpenSSL made its own connection; with `conn`
  // given it is a memory BIO to free here.
  BIO_free_all(resp);
  r.body = std::move(out);
  return r;
}

}  // namespace kyso::formats::detail
