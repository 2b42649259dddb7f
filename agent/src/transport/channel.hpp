#pragma once
// The agent's transport (listener.hpp, session.hpp) knows bytes, connections and limits; the
// protocol (../protocol/) knows methods. These three interfaces are all they know of each
// other: the protocol gets a Channel per connection and can only send and close through it;
// the transport hands each message to the connection's Handler and asks the Gate whether an
// upgrade may happen at all.

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kyso/core/error.hpp"

namespace kyso::agent::transport {

/// One accepted WebSocket connection, as the protocol sees it. Thread-safe.
class Channel {
 public:
  Channel() = default;
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  Channel(Channel&&) = delete;
  Channel& operator=(Channel&&) = delete;

  /// Queues one text message; messages go out in queue order, each a WebSocket message of its
  /// own, and a run of queued ones shares one write to the socket. On the connection's executor
  /// it never waits. From any other thread (a job's reporting thread)
  /// it waits while the connection's queue is full, so a page that reads slowly slows its batch
  /// instead of growing memory; it returns at once, dropping `text`, once the connection closed.
  virtual void send(std::string text) = 0;
  /// Closes the connection with this WebSocket close code (1000, 1001, ...). Any thread.
  virtual void close(std::uint16_t code) = 0;
};

/// The protocol's side of one connection, made when the upgrade succeeds. The transport calls it
/// on the connection's executor only.
class Handler {
 public:
  Handler() = default;
  virtual ~Handler() = default;
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;
  Handler(Handler&&) = delete;
  Handler& operator=(Handler&&) = delete;

  /// One complete message. `text` false: a binary message (its bytes are not passed on).
  virtual void on_message(std::string message, bool text) = 0;
  /// The connection is gone (peer, idle timeout, oversized frame, server stop); called once.
  virtual void on_close() = 0;
  /// Whether a request is still being worked on (a dialog, a batch): the idle timeout waits.
  [[nodiscard]] virtual bool busy() const = 0;
};

/// The policy behind the transport's checks, provided by the protocol. Thread-safe.
class Gate {
 public:
  Gate() = default;
  virtual ~Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  Gate(Gate&&) = delete;
  Gate& operator=(Gate&&) = delete;

  /// The body of `GET /` (discovery).
  [[nodiscard]] virtual std::string status_body() const = 0;
  /// The value of the `Server` header.
  [[nodiscard]] virtual std::string server_name() const = 0;
  /// Whether a WebSocket from `origin` (normalized) may be opened at all.
  [[nodiscard]] virtual bool admits(const std::string& origin) const = 0;
  /// Whether `origin` is allow-listed or paired: its connections come out of the main quota;
  /// any other's out of the small quota of unpaired connections.
  [[nodiscard]] virtual bool trusted(const std::string& origin) const = 0;
  /// A refused request or connection: recorded when `record`; returns the JSON body the
  /// client gets.
  virtual std::string refused(ErrorCode code, const std::string& origin, const std::string& detail,
                              bool record) = 0;
  /// The connection's protocol side, made once the upgrade succeeded. `executor` is the
  /// connection's own (a strand): the handler posts its work's results there.
  virtual std::shared_ptr<Handler> open(const std::string& origin, std::shared_ptr<Channel> channel,
                                        boost::asio::any_io_executor executor) = 0;
};

}  // namespace kyso::agent::transport
