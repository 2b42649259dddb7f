#pragma once
// The agent's listener on 127.0.0.1 and [::1] (or systemd's sockets): accepts connections of
// this OS user only and runs each as a WebSocket session (listener.cpp) that checks Host and
// Origin before the upgrade, bounds frames, connections, the write queue and idle time, and
// hands each message to the protocol's Handler. Nothing here knows a method name.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "channel.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "tls_certificate.hpp"

namespace kyso::agent::transport {

/// Connections of origins neither allow-listed nor paired (pages that may only say hello and
/// ask to pair): in total, and per origin. They come out of their own quota, so no unpaired page
/// can take the connections of allow-listed or paired pages (max_connections).
inline constexpr std::size_t kUnpairedConnections = 4;
inline constexpr std::size_t kUnpairedPerOrigin = 2;
/// Messages an unpaired origin's connection may send: a burst of kUnpairedBurst, then
/// kUnpairedPerSecond. Beyond that the agent reads the connection's next message later (TCP
/// holds the rest), so a page flooding refused requests costs the agent a few parses a second
/// instead of the CPU the school's page signs with. hello, status and pair need far less.
inline constexpr double kUnpairedBurst = 8;
inline constexpr double kUnpairedPerSecond = 4;

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
  [[nodiscard]] bool tls() const noexcept { return tls_.has_value(); }
  /// Open WebSocket connections now (trusted and unpaired).
  [[nodiscard]] std::size_t connections() const noexcept { return connections_.load(); }

  /// Starts accepting (on the io_context's thread).
  void start();
  /// Stops accepting and closes every connection (their handlers see on_close). Any thread.
  void stop() noexcept;
  /// Once no thread runs the io_context any more: ends every session stop() could not reach
  /// (its posted shutdown never ran), so that no session and its handler keep each other.
  void finish() noexcept;

  // For the sessions.
  [[nodiscard]] Gate& gate() noexcept { return *gate_; }
  [[nodiscard]] const firmware_config::AgentLimits& limits() const noexcept { return limits_; }
  [[nodiscard]] bool host_ok(std::string_view host) const;
  /// Takes a connection slot: a trusted origin's out of max_connections, any other's out of the
  /// unpaired quota (kUnpairedConnections, kUnpairedPerOrigin). False when its quota is full.
  bool take_slot(const std::string& origin, bool trusted);
  /// Gives back what take_slot(origin, trusted) took.
  void release_slot(const std::string& origin, bool trusted) noexcept;
  /// An unpaired origin's connection whose origin paired since: its slot moves to
  /// max_connections (false, and it stays where it was, when that is full), so that pages pairing
  /// at once do not keep the unpaired quota for as long as they stay connected.
  bool promote_slot(const std::string& origin);
  void add(const std::shared_ptr<SessionBase>& s);

 private:
  void bind(const firmware_config::AgentConfig& cfg);
  void do_accept(boost::asio::ip::tcp::acceptor& a);
  void on_accept(boost::asio::ip::tcp::acceptor& a, boost::system::error_code ec,
                 boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  std::shared_ptr<Gate> gate_;
  const firmware_config::AgentLimits limits_;
  std::optional<TlsCertificate> tls_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> connections_{0};
  std::mutex slots_mutex_;
  std::size_t trusted_ = 0;
  std::map<std::string, std::size_t> unpaired_;  ///< origin -> open connections
  std::size_t unpaired_total_ = 0;
  std::atomic<bool> stopped_{false};
  std::mutex sessions_mutex_;
  std::vector<std::weak_ptr<SessionBase>> sessions_;
};

}  // namespace kyso::agent::transport
