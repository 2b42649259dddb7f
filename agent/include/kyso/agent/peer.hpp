#pragma once
/// @file
/// Who is on the other end of a loopback TCP connection. On a terminal server every user shares
/// 127.0.0.1, so the agent refuses peers that belong to another OS user.

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace kyso::agent {

/// The OS's answer on a loopback peer: whether the process at the other end runs as the same
/// user as this one, and who it is, for the log ("uid 1001", "pid 4242 of another user",
/// "uid unknown").
struct PeerUser {
  bool same_user = false;
  std::string who;
};

/// The agent's check of every connection (`local` is our end, `remote` the peer's). Linux:
/// peer_uid() against getuid() (peer.cpp). Windows: the owning process of the peer's socket
/// from GetExtendedTcpTable, its token's user SID against this process's (peer_windows.cpp).
/// Not the same user when the OS cannot say.
PeerUser loopback_peer_user(const boost::asio::ip::tcp::endpoint& local,
                            const boost::asio::ip::tcp::endpoint& remote);

// Linux only (peer.cpp), exposed for the unit tests:

/// The uid owning the peer's socket of the loopback connection (`local` is our end, `remote`
/// the peer's). Linux: the kernel's sock_diag lookup of the peer's socket (its local address is
/// our remote one); without sock_diag, its row in /proc/net/tcp or /proc/net/tcp6, which costs
/// a scan of every TCP socket on the machine. nullopt when it cannot be found.
std::optional<unsigned> peer_uid(const boost::asio::ip::tcp::endpoint& local,
                                 const boost::asio::ip::tcp::endpoint& remote);

/// The kernel's own answer (NETLINK_SOCK_DIAG, the interface `ss` uses): the uid owning the
/// TCP socket whose local end is `local` and remote end `remote`, by one exact lookup however
/// many sockets the machine has. nullopt without sock_diag or without such a socket.
std::optional<unsigned> kernel_socket_uid(const boost::asio::ip::tcp::endpoint& local,
                                          const boost::asio::ip::tcp::endpoint& remote);

/// Parses a /proc/net/tcp{,6} table: the uid of the row whose local address is `local` and
/// remote address is `remote`. Exposed for unit tests.
std::optional<unsigned> find_socket_uid(const std::string& table,
                                        const boost::asio::ip::tcp::endpoint& local,
                                        const boost::asio::ip::tcp::endpoint& remote);

}  // namespace kyso::agent
