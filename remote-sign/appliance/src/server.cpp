// The appliance's HTTPS transport: the shared server skeleton (kyso/core/http_server.hpp) with
// TLS always on, the CSC service behind it, and a timer that purges expired state.
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/http_server.hpp"
#include "kyso/pkcs11/library.hpp"
#include "service.hpp"

namespace kyso::appliance {
namespace {

HttpServerOptions server_options(const ApplianceConfig& c) {
  HttpServerOptions o;
  o.name = "kyso-appliance";
  o.listen_address = c.listen_address;
  o.port = c.port;
  o.tls_cert_file = c.tls_cert_file;
  o.tls_key_file = c.tls_key_file;
  o.max_body_bytes = c.limits.max_body_bytes;
  o.request_timeout = c.limits.request_timeout;
  o.idle_timeout = c.limits.idle_timeout;
  o.max_connections = c.limits.max_connections;
  o.io_threads = c.limits.io_threads;
  o.workers = c.limits.workers;
  return o;
}

}  // namespace

struct Appliance::Impl {
  explicit Impl(ApplianceConfig c)
      : config(std::move(c)),
        library(pkcs11::ModuleConfig{config.pkcs11_modules, false, false}),
        // A node never migrates a shared database on its own: `kyso-appliance migrate` does.
        store(
            open_state_store(config.state_db.string(), !is_postgres_url(config.state_db.string()))),
        sign_pool(config.limits.sign_threads),
        service(config, *store, library, sign_pool),
        server(server_options(config),
               {[this](HttpRequest& r) { return service.handle(r); },
                [](unsigned status, const std::string& why) {
                  return error_response(
                      {status, status == 503 ? "temporarily_unavailable" : "invalid_request", why});
                }}) {
    if (config.tls_cert_file.empty() || config.tls_key_file.empty()) {
      throw Error(ErrorCode::ConfigInvalid, "the appliance only speaks HTTPS: TLS files missing");
    }
    for (const auto& m : library.modules()) {
      if (!m.loaded) throw Error(ErrorCode::ModuleLoadFailed, m.path + ": " + m.error);
    }
  }

  ApplianceConfig config;
  pkcs11::Library library;
  std::unique_ptr<StateStore> store;
  boost::asio::thread_pool sign_pool;
  Service service;
  HttpServer server;
  std::thread purger;
  // stopping: stop() has begun (the purger ends); stopped: every thread is joined. wait() and a
  // second stop() (the destructor after a signal thread's stop()) return only once stopped.
  bool stopping = false;
  bool stopped = false;
  std::mutex mutex;
  std::condition_variable cv;

  // Expired tokens, SADs and lockouts go once a minute.
  void purge_loop() {
    std::unique_lock lock(mutex);
    while (!cv.wait_for(lock, std::chrono::minutes(1), [this] { return stopping; })) {
      lock.unlock();
      try {
        store->purge(std::chrono::system_clock::now());
      } catch (const Error&) {  // next minute again
      }
      lock.lock();
    }
  }
};

Appliance::Appliance(ApplianceConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Appliance::~Appliance() {
  stop();
}

void Appliance::start() {
  auto& i = *impl_;
  i.server.start();
  i.purger = std::thread([&i] { i.purge_loop(); });
  i.store->audit("-", "appliance.start", "port " + std::to_string(i.server.port()));
}

void Appliance::stop() noexcept {
  auto& i = *impl_;
  {
    std::unique_lock lock(i.mutex);
    if (i.stopping) {
      i.cv.wait(lock, [&] { return i.stopped; });
      return;
    }
    i.stopping = true;
  }
  i.cv.notify_all();
  i.server.stop();
  if (i.purger.joinable()) i.purger.join();
  i.sign_pool.join();
  {
    const std::lock_guard lock(i.mutex);
    i.stopped = true;
  }
  i.cv.notify_all();
}

void Appliance::wait() {
  auto& i = *impl_;
  std::unique_lock lock(i.mutex);
  i.cv.wait(lock, [&] { return i.stopped; });
}

std::uint16_t Appliance::port() const noexcept {
  return impl_->server.port();
}

double Appliance::signing_seconds() const noexcept {
  return impl_->service.signing_seconds();
}

StateStore& Appliance::store() noexcept {
  return *impl_->store;
}

std::uint64_t Appliance::requests() const noexcept {
  return impl_->service.requests();
}

}  // namespace kyso::appliance
