#pragma once
// Protocol v1 (docs/protocol.md) for one connection: the dispatcher. Every method is one entry
// of one table (connection.cpp: its name, its trust requirement, whether it takes an in-flight
// slot, its parser and its handler); the handlers live one file per family (hello.cpp,
// credentials.cpp, signing.cpp, transfers.cpp) and write their answers through wire.hpp.
// Runs on the connection's executor; work that blocks (dialogs, tokens, networks) goes to the
// worker pool and its answer comes back here. Needs no socket: a test gives it a Channel.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "../transport/channel.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/agent/uploads.hpp"

namespace kyso::agent::protocol {

using Id = nlohmann::json;
class Connection;
struct Batches;

/// What every connection shares: the agent's service and the worker pool. Also the transport's
/// Gate (the policy of upgrades) and the list of connections token events go to.
class Protocol final : public transport::Gate, public std::enable_shared_from_this<Protocol> {
 public:
  Protocol(std::shared_ptr<Service> service, boost::asio::any_io_executor workers, bool tls);

  [[nodiscard]] Service& service() const noexcept { return *service_; }
  [[nodiscard]] const boost::asio::any_io_executor& workers() const noexcept { return workers_; }

  // transport::Gate
  [[nodiscard]] std::string status_body() const override;
  [[nodiscard]] std::string server_name() const override;
  [[nodiscard]] bool admits(const std::string& origin) const override;
  [[nodiscard]] bool trusted(const std::string& origin) const override;
  std::string refused(ErrorCode code, const std::string& origin, const std::string& detail,
                      bool record) override;
  std::shared_ptr<transport::Handler> open(const std::string& origin,
                                           std::shared_ptr<transport::Channel> channel,
                                           boost::asio::any_io_executor executor) override;

  /// Sends `text` (a token event) to every open connection of a trusted origin. Any thread.
  void broadcast(const std::string& text);

 private:
  std::shared_ptr<Service> service_;
  boost::asio::any_io_executor workers_;
  bool tls_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<Connection>> connections_;
};

class Connection final : public transport::Handler,
                         public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Protocol> protocol, std::string origin,
             std::shared_ptr<transport::Channel> channel, boost::asio::any_io_executor executor);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;

  // transport::Handler
  void on_message(std::string message, bool text) override;
  void on_close() override;
  [[nodiscard]] bool busy() const override { return in_flight_ > 0; }

  // ---- for the method handlers (on the connection's executor) ------------------------------
  [[nodiscard]] Service& service() const noexcept { return protocol_->service(); }
  [[nodiscard]] const boost::asio::any_io_executor& workers() const noexcept {
    return protocol_->workers();
  }
  [[nodiscard]] const std::string& origin() const noexcept { return origin_; }
  [[nodiscard]] Language language() const noexcept { return lang_; }
  void set_language(Language l) noexcept { lang_ = l; }
  [[nodiscard]] const firmware_config::AgentLimits& limits() const noexcept;
  [[nodiscard]] Batches& batches() noexcept { return *batches_; }
  /// The connection's uploads and downloads (made on first use).
  Transfers& transfers();

  void respond(const Id& id, const nlohmann::json& result);
  void fail(const Id& id, const Error& e);
  /// Through the channel (see transport::Channel::send: waits for room off this executor).
  void send(std::string text) { channel_->send(std::move(text)); }

  /// Sends an event from the connection's executor (any thread; never waits).
  void notify(std::string text);

  /// Runs `work(cancel)` on the worker pool, counted in flight until `done` ran on this
  /// connection's executor with its outcome (an Error thrown by `work` included). `cancel` is
  /// set when the connection closes.
  template <typename T>
  void run(std::function<T(const std::atomic<bool>& cancel)> work,
           std::function<void(Connection&, std::optional<T>, std::optional<Error>)> done,
           std::shared_ptr<std::atomic<bool>> cancel = nullptr);
  /// In-flight accounting for what runs longer than one request (a batch announced before its
  /// items arrived).
  void hold() noexcept { ++in_flight_; }
  void release() noexcept { --in_flight_; }

 private:
  void dispatch(std::string_view text);
  void watch(const std::shared_ptr<std::atomic<bool>>& f);
  void unwatch(const std::shared_ptr<std::atomic<bool>>& f);
  template <typename F>
  void post_back(F&& fn) {
    boost::asio::post(executor_, std::forward<F>(fn));
  }

  std::shared_ptr<Protocol> protocol_;
  std::string origin_;
  std::shared_ptr<transport::Channel> channel_;
  boost::asio::any_io_executor executor_;
  Language lang_ = Language::Vi;
  std::size_t in_flight_ = 0;
  std::unique_ptr<Batches> batches_;
  std::unique_ptr<Transfers> transfers_;
  std::mutex flags_mutex_;  // jobs' cancel flags, set by on_close from the executor
  bool closed_ = false;
  std::vector<std::shared_ptr<std::atomic<bool>>> flags_;
};

template <typename T>
void Connection::run(std::function<T(const std::atomic<bool>& cancel)> work,
                     std::function<void(Connection&, std::optional<T>, std::optional<Error>)> done,
                     std::shared_ptr<std::atomic<bool>> cancel) {
  if (!cancel) cancel = std::make_shared<std::atomic<bool>>(false);
  watch(cancel);
  ++in_flight_;
  boost::asio::post(protocol_->workers(), [self = shared_from_this(), work = std::move(work),
                                           done = std::move(done), cancel]() mutable {
    std::optional<T> value;
    std::optional<Error> err;
    try {
      value.emplace(work(*cancel));
    } catch (const Error& e) {
      err = e;
    } catch (const std::exception& e) {
      err = Error(ErrorCode::Internal, e.what());
    }
    auto* raw = self.get();
    raw->post_back([self = std::move(self), done = std::move(done), value = std::move(value),
                    err = std::move(err), cancel]() mutable {
      --self->in_flight_;
      self->unwatch(cancel);
      done(*self, std::move(value), std::move(err));
    });
  });
}

}  // namespace kyso::agent::protocol
