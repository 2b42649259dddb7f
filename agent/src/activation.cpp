#include "activation.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "kyso/core/error.hpp"

namespace kyso::agent::detail {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START
constexpr int kMaxFds = 16;  // the unit lists two; more is a mistake

std::optional<long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  long out = 0;
  const std::string_view s(v);
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return out;
}

int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, name, &value, &len) != 0) return -1;
  return value;
}

[[noreturn]] void refuse(int fd, const std::string& what) {
  throw Error(ErrorCode::ConfigInvalid,
              "socket activation: fd " + std::to_string(fd) + " " + what +
                  "; kyso-agent only listens on TCP 127.0.0.1 / [::1] (check kyso-agent.socket)");
}

}  // namespace

std::vector<ActivatedSocket> activated_sockets(std::uint16_t& port) {
  const auto pid = env_number("LISTEN_PID");
  const auto count = env_number("LISTEN_FDS");
  if (!pid || !count || *pid != static_cast<long>(::getpid())) return {};
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (*count <= 0) return {};
  if (*count > kMaxFds) {
    throw Error(ErrorCode::ConfigInvalid, "socket activation: " + std::to_string(*count) +
                                              " sockets passed, expected 1 or 2");
  }
  std::vector<ActivatedSocket> out;
  std::uint16_t common = 0;
  for (int fd = kFirstFd; fd < kFirstFd + static_cast<int>(*count); ++fd) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (int_option(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM) refuse(fd, "is not a stream socket");
    const int domain = int_option(fd, SOL_SOCKET, SO_DOMAIN);
    if (domain != AF_INET && domain != AF_INET6) refuse(fd, "is not an IPv4/IPv6 socket");
    if (int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) refuse(fd, "is not TCP");
    if (int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) refuse(fd, "is not listening");
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      refuse(fd, std::string("has no address (") + std::strerror(errno) + ")");
    }
    std::uint16_t p = 0;
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
      const auto& a4 = reinterpret_cast<const sockaddr_in&>(addr);
      ::inet_ntop(AF_INET, &a4.sin_addr, text, sizeof text);
      if (ntohl(a4.sin_addr.s_addr) != INADDR_LOOPBACK) {
        refuse(fd, std::string("is bound to ") + text + ", not 127.0.0.1");
      }
      p = ntohs(a4.sin_port);
    } else {
      const auto& a6 = reinterpret_cast<const sockaddr_in6&>(addr);
      ::inet_ntop(AF_INET6, &a6.sin6_addr, text, sizeof text);
      if (std::memcmp(&a6.sin6_addr, &in6addr_loopback, sizeof in6addr_loopback) != 0) {
        refuse(fd, std::string("is bound to [") + text + "], not [::1]");
      }
      // A dual-stack [::1] socket accepts nothing but ::1 either; v6-only is not required.
      p = ntohs(a6.sin6_port);
    }
    if (common != 0 && p != common) {
      refuse(fd, "listens on port " + std::to_string(p) + " but another socket on " +
                     std::to_string(common) + " (the Host check needs one port)");
    }
    common = p;
    out.push_back({fd, addr.ss_family == AF_INET6});
  }
  port = common;
  return out;
}

}  // namespace kyso::agent::detail
