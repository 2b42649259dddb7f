// The agent put together: the transport's listener (transport/), protocol v1 behind its
// Channel/Handler/Gate interfaces (protocol/), the signing desk (Service) on a worker pool, and
// the token watcher whose token.inserted / token.removed events go to trusted pages.

#include "kyso/agent/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "kyso/agent/uploads.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/pkcs11/usb.hpp"
#include "protocol/connection.hpp"
#include "protocol/wire.hpp"
#include "transport/listener.hpp"

namespace kyso::agent {

namespace net = boost::asio;
using json = nlohmann::json;

namespace {

constexpr auto kRefreshPeriod = std::chrono::seconds(2);
constexpr std::size_t kWorkerThreads = 2;

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  explicit Impl(std::shared_ptr<Service> s)
      : service(std::move(s)), workers(kWorkerThreads), refresh_timer(ioc) {}

  std::shared_ptr<Service> service;
  net::io_context ioc{1};
  net::thread_pool workers;
  std::shared_ptr<protocol::Protocol> protocol;
  std::shared_ptr<transport::Listener> listener;
  std::vector<std::thread> threads;
  net::steady_timer refresh_timer;
  std::unique_ptr<pkcs11::UsbWatcher> usb;
  std::mutex tokens_mutex;
  std::optional<std::map<std::string, json>> known_tokens;  // identity -> token json
  std::atomic<bool> refresh_queued{false};
  std::atomic<bool> stopped{false};

  void schedule_refresh();
  void queue_refresh();
  void refresh_tokens();
};

void Server::Impl::queue_refresh() {
  if (stopped.load() || refresh_queued.exchange(true)) return;
  net::post(workers, [self = shared_from_this()] {
    self->refresh_queued = false;
    self->refresh_tokens();
    // Between jobs, what the last burst of batches and documents freed goes back to the OS:
    // glibc would keep it in the threads' arenas, and the agent's RSS would stay at its
    // high-water mark for the rest of the day (issue 17, the soak).
    if (!self->service->busy()) platform::release_free_heap();
  });
}

void Server::Impl::schedule_refresh() {
  refresh_timer.expires_after(kRefreshPeriod);
  // A weak reference: the io_context is ours, and stop() may stop it before the cancelled wait
  // has run; a handler left in it holding us would keep us, the Service and the listener alive
  // for good.
  refresh_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    const auto self = weak.lock();
    if (ec || !self || self->stopped.load()) return;
    self->queue_refresh();
    self->schedule_refresh();
  });
}

void Server::Impl::refresh_tokens() {
  std::map<std::string, json> now;
  try {
    for (const auto& t : service->library().tokens()) {
      try {
        const auto info = t->info();
        now[t->identity()] = {{"label", info.label},
                              {"serial", info.serial},
                              {"manufacturer", info.manufacturer},
                              {"model", info.model},
                              {"module", info.module_path}};
      } catch (const Error&) {
        // Gone while we looked: it is not present.
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("token refresh failed: {}", e.what());
    return;
  }
  std::vector<std::string> events;
  {
    const std::lock_guard lock(tokens_mutex);
    if (known_tokens) {
      for (const auto& [k, v] : now) {
        if (!known_tokens->contains(k)) {
          events.push_back(protocol::wire::event("token.inserted", nullptr, {{"token", v}}));
        }
      }
      for (const auto& [k, v] : *known_tokens) {
        if (!now.contains(k)) {
          events.push_back(protocol::wire::event("token.removed", nullptr, {{"token", v}}));
        }
      }
    }
    known_tokens = std::move(now);
  }
  // Each connection sends it from its own executor: a page that does not read cannot hold up
  // the worker that watches the tokens.
  for (const auto& e : events) protocol->broadcast(e);
}

Server::Server(std::shared_ptr<Service> service)
    : impl_(std::make_shared<Impl>(std::move(service))) {
  auto& i = *impl_;
  const auto& cfg = i.service->config();
  i.protocol = std::make_shared<protocol::Protocol>(i.service, i.workers.get_executor(), cfg.tls);
  i.listener = std::make_shared<transport::Listener>(i.ioc, cfg, i.protocol);
  Transfers::remove_stale(cfg.state_dir);  // files of connections a crashed agent left behind
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const noexcept {
  return impl_->listener->port();
}

std::size_t Server::connections() const noexcept {
  return impl_->listener->connections();
}

void Server::start() {
  auto& i = *impl_;
  i.listener->start();
  i.refresh_tokens();  // the baseline: tokens present at start raise no event
  i.schedule_refresh();
  try {
    std::weak_ptr<Impl> weak = impl_;
    i.usb = std::make_unique<pkcs11::UsbWatcher>(
        [weak](const pkcs11::UsbEvent& e) {
          // A known token whose module is missing never shows up as a PKCS#11 token: say why.
          if (e.kind == pkcs11::UsbEvent::Kind::Arrived && e.token && !e.token->module) {
            spdlog::warn("{} / {}", e.token->hint_vi, e.token->hint_en);
          }
          if (auto s = weak.lock()) s->queue_refresh();
        },
        i.service->known_tokens());
    i.usb->start();
  } catch (const std::exception& e) {
    spdlog::info("USB watching unavailable ({}); polling the token list", e.what());
    i.usb.reset();
  }
  i.threads.emplace_back([&i] { i.ioc.run(); });
}

void Server::run() {
  start();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

void Server::stop() noexcept {
  auto& i = *impl_;
  if (i.stopped.exchange(true)) return;
  if (i.usb) i.usb->stop();
  i.listener->stop();  // connections close: their jobs see their cancel flags
  net::post(i.ioc, [&i] { i.refresh_timer.cancel(); });
  i.workers.join();  // dialogs and batches end
  i.ioc.stop();
  for (auto& t : i.threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  i.threads.clear();
  i.listener->finish();  // sessions whose posted shutdown the stopped io_context never ran
}

}  // namespace kyso::agent
