#include "kyso/agent/peer.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kyso::agent {
namespace {

/// Copies an endpoint's address into an inet_diag_sockid word array (network byte order).
void put_address(const boost::asio::ip::tcp::endpoint& ep, __be32* words) {
  const auto addr = ep.address();
  if (addr.is_v4()) {
    const auto b = addr.to_v4().to_bytes();
    std::memcpy(words, b.data(), b.size());
  } else {
    const auto b = addr.to_v6().to_bytes();
    std::memcpy(words, b.data(), b.size());
  }
}

}  // namespace

std::optional<unsigned> kernel_socket_uid(const boost::asio::ip::tcp::endpoint& local,
                                          const boost::asio::ip::tcp::endpoint& remote) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return std::nullopt;
  struct Request {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } req{};
  req.header.nlmsg_len = sizeof req;
  req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.header.nlmsg_flags = NLM_F_REQUEST;
  req.body.sdiag_family = local.address().is_v4() ? AF_INET : AF_INET6;
  req.body.sdiag_protocol = IPPROTO_TCP;
  req.body.idiag_states = ~0U;
  req.body.id.idiag_sport = htons(local.port());
  req.body.id.idiag_dport = htons(remote.port());
  put_address(local, req.body.id.idiag_src);
  put_address(remote, req.body.id.idiag_dst);
  req.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::optional<unsigned> uid;
  if (::sendto(fd, &req, sizeof req, 0, reinterpret_cast<const sockaddr*>(&kernel),
               sizeof kernel) == static_cast<ssize_t>(sizeof req)) {
    alignas(nlmsghdr) std::array<char, 8192> buf{};
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
    // NLMSG_OK / NLMSG_DATA spelled out: the header, aligned to 4 bytes, then the message.
    constexpr std::size_t kHeader = (sizeof(nlmsghdr) + 3U) & ~std::size_t{3};
    const auto* h = reinterpret_cast<const nlmsghdr*>(buf.data());
    if (got >= static_cast<ssize_t>(kHeader) && h->nlmsg_len <= static_cast<std::size_t>(got) &&
        h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= kHeader + sizeof(inet_diag_msg)) {
      const auto* m = reinterpret_cast<const inet_diag_msg*>(buf.data() + kHeader);
      uid = m->idiag_uid;
    }
  }
  ::close(fd);
  return uid;
}

PeerUser loopback_peer_user(const boost::asio::ip::tcp::endpoint& local,
                            const boost::asio::ip::tcp::endpoint& remote) {
  const auto uid = peer_uid(local, remote);
  return {uid && *uid == ::getuid(), "uid " + (uid ? std::to_string(*uid) : "unknown")};
}

std::optional<unsigned> peer_uid(const boost::asio::ip::tcp::endpoint& local,
                                 const boost::asio::ip::tcp::endpoint& remote) {
  // The peer's own socket has the peer's address as its local end.
  if (const auto uid = kernel_socket_uid(remote, local)) return uid;
  const char* file = remote.address().is_v4() ? "/proc/net/tcp" : "/proc/net/tcp6";
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return find_socket_uid(ss.str(), remote, local);
}

}  // namespace kyso::agent
