// find_socket_uid (kyso/agent/peer.hpp): the /proc/net/tcp{,6} parser, which the Linux check
// (peer.cpp) and the Windows one under Wine (peer_windows.cpp) share: compiled on both.
#include <cstdint>
#include <cstdio>
#include <sstream>

#include "kyso/agent/peer.hpp"

namespace kyso::agent {
namespace {

/// The "ADDR:PORT" form /proc/net/tcp{,6} prints: each 32-bit word of the address in host
/// byte order as %08X, then the port as %04X.
std::string proc_address(const boost::asio::ip::tcp::endpoint& ep) {
  std::string out;
  char word[9];
  auto put_word = [&](const unsigned char* b) {
    // The kernel prints the in-memory (network-order) word as a host-order integer.
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8U) | b[i];
    std::snprintf(word, sizeof word, "%08X", v);
    out += word;
  };
  const auto addr = ep.address();
  if (addr.is_v4()) {
    const auto bytes = addr.to_v4().to_bytes();
    put_word(bytes.data());
  } else {
    const auto bytes = addr.to_v6().to_bytes();
    for (std::size_t i = 0; i < 16; i += 4) put_word(bytes.data() + i);
  }
  char port[6];
  std::snprintf(port, sizeof port, "%04X", static_cast<unsigned>(ep.port()));
  out.push_back(':');
  out += port;
  return out;
}

}  // namespace

std::optional<unsigned> find_socket_uid(const std::string& table,
                                        const boost::asio::ip::tcp::endpoint& local,
                                        const boost::asio::ip::tcp::endpoint& remote) {
  const std::string want_local = proc_address(local);
  const std::string want_remote = proc_address(remote);
  std::istringstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string sl, loc, rem, st, queues, timer, retr, uid;
    if (!(row >> sl >> loc >> rem >> st >> queues >> timer >> retr >> uid)) continue;
    if (loc == want_local && rem == want_remote) {
      try {
        return static_cast<unsigned>(std::stoul(uid));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

}  // namespace kyso::agent
