#pragma once
// The agent's listener on 127.0.0.1 and [::1] (or systemd's sockets): accepts connections of
// this OS user only and runs each as a WebSocket session (listener.cpp) that checks Host and
// Origin before the upgrade, bounds frames, connections, the write queue and idle time, and
// hands each message to the protocol's Handler. Nothing here knows a method name.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "channel.hpp"
#include "kyso/firmware_config/agent_config.hpp"

namespace kyso::agent::transport {

class SessionBase;

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  /// Binds at once: systemd's sockets when socket-activated, else `cfg.port` then its
  /// fallbacks (port 0: any free port). Throws Error(ConfigInvalid) when no port can be bound or
  /// the TLS certificate cannot be loaded.
  Listener(boost::asio::io_context& ioc, const firmware_config::AgentConfig& cfg,
           std::shared_ptr<Gate> gate);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  Listener(Listener&&) = delete;
  Listener& operator=(Listener&&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] bool tls() const noexcept { return ssl_.has_value(); }
  /// Open WebSocket connections now.
  [[nodiscard]] std::size_t connections() const noexcept { return connections_.load(); }

  /// Starts accepting (on the io_context's thread).
  void start();
  /// Stops accepting and closes every connection (their handlers see on_close). Any thread.
  void stop() noexcept;

  // For the sessions.
  [[nodiscard]] Gate& gate() noexcept { return *gate_; }
  [[nodiscard]] const firmware_config::AgentLimits& limits() const noexcept { return limits_; }
  [[nodiscard]] bool host_ok(std::string_view host) const;
  /// Takes a connection slot; false when max_connections are open.
  bool take_slot() noexcept;
  void release_slot() noexcept { connections_.fetch_sub(1); }
  void add(const std::shared_ptr<SessionBase>& s);

 private:
  void bind(const firmware_config::AgentConfig& cfg);
  void do_accept(boost::asio::ip::tcp::acceptor& a);
  void on_accept(boost::asio::ip::tcp::acceptor& a, boost::system::error_code ec,
                 boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  std::shared_ptr<Gate> gate_;
  const firmware_config::AgentLimits limits_;
  std::optional<boost::asio::ssl::context> ssl_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> connections_{0};
  std::atomic<bool> stopped_{false};
  std::mutex sessions_mutex_;
  std::vector<std::weak_ptr<SessionBase>> sessions_;
};

}  // namespace kyso::agent::transport
