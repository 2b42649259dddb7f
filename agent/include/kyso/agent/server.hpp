#pragma once
/// @file
/// The agent's WebSocket server (Boost.Beast) on 127.0.0.1 and [::1]: checks the peer's OS
/// user, Host and Origin before the upgrade, speaks protocol v1 (docs/protocol.md), runs token
/// work on a worker pool and sends token.inserted / token.removed events.

#include <cstdint>
#include <memory>

#include "kyso/agent/service.hpp"

namespace kyso::agent {

class Server {
 public:
  /// Binds at once (port, then the two fallbacks; port 0 picks a free port, for tests).
  /// Throws Error(ConfigInvalid) when no port can be bound.
  explicit Server(std::shared_ptr<Service> service);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  /// Runs the io and worker threads until stop().
  void run();
  /// Starts the threads and returns (tests, benchmarks).
  void start();
  /// Stops accepting, closes connections, joins threads. Safe from any thread.
  void stop() noexcept;
  /// Open WebSocket connections now.
  [[nodiscard]] std::size_t connections() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace kyso::agent
