#pragma once
/// @file
/// Who is on the other end of a loopback TCP connection. On a terminal server every user shares
/// 127.0.0.1, so the agent refuses peers that belong to another OS user.

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace kyso::agent {

/// The uid owning the peer's socket of the loopback connection (`local` is our end, `remote`
/// the peer's). Linux: the peer's row in /proc/net/tcp or /proc/net/tcp6 (its local address is
/// our remote one). nullopt when it cannot be found.
std::optional<unsigned> peer_uid(const boost::asio::ip::tcp::endpoint& local,
                                 const boost::asio::ip::tcp::endpoint& remote);

/// Parses a /proc/net/tcp{,6} table: the uid of the row whose local address is `local` and
/// remote address is `remote`. Exposed for unit tests.
std::optional<unsigned> find_socket_uid(const std::string& table,
                                        const boost::asio::ip::tcp::endpoint& local,
                                        const boost::asio::ip::tcp::endpoint& remote);

}  // namespace kyso::agent
