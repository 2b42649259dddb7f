#pragma once
// systemd socket activation (sd_listen_fds(3)): the listening sockets kyso-agent.socket hands
// the agent, checked to be what the agent would have bound itself.

#include <cstdint>
#include <vector>

namespace kyso::agent::detail {

/// A listening socket as the OS names it: a file descriptor on POSIX, a SOCKET (an unsigned
/// handle) on Windows, where nothing activates the agent (activation_none.cpp) but the listener
/// that adopts these sockets is the same code.
#if defined(_WIN32)
using NativeSocket = std::uintptr_t;
#else
using NativeSocket = int;
#endif

struct ActivatedSocket {
  NativeSocket fd = static_cast<NativeSocket>(-1);
  bool v6 = false;
};

/// The sockets systemd passed to this process (LISTEN_PID is ours, LISTEN_FDS sockets from fd
/// 3), empty when the agent was not socket-activated. Each must be a listening TCP socket bound
/// to 127.0.0.1 or [::1], all on one port; anything else throws Error(ConfigInvalid) naming the
/// fd and what it is (the agent then refuses to start rather than listen beyond loopback). The
/// LISTEN_* variables are removed and the fds made close-on-exec, so pinentry inherits neither.
std::vector<ActivatedSocket> activated_sockets(std::uint16_t& port);

}  // namespace kyso::agent::detail
