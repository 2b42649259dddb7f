#include "connection.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>

#include "kyso/agent/pairing.hpp"
#include "methods.hpp"
#include "request.hpp"
#include "signing.hpp"
#include "wire.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

/// The one table of methods.
const std::vector<Method>& table() {
  static const std::vector<Method> all = [] {
    std::vector<Method> t;
    for (auto family :
         {hello_methods(), credentials_methods(), signing_methods(), transfer_methods()}) {
      t.insert(t.end(), family.begin(), family.end());
    }
    return t;
  }();
  return all;
}

const Method* find_method(std::string_view name) {
  const auto& t = table();
  const auto it = std::ranges::find(t, name, &Method::name);
  return it == t.end() ? nullptr : &*it;
}

}  // namespace

// ---- Protocol ----------------------------------------------------------------------------------

Protocol::Protocol(std::shared_ptr<Service> service, boost::asio::any_io_executor workers, bool tls)
    : service_(std::move(service)), workers_(std::move(workers)), tls_(tls) {}

std::string Protocol::status_body() const {
  return wire::status(tls_);
}

std::string Protocol::server_name() const {
  return "kyso-agent/" + std::string(kAgentVersion);
}

bool Protocol::admits(const std::string& origin) const {
  return service_->allow_listed(origin) || service_->pairings().contains(origin) ||
         origin_pairable(origin);
}

bool Protocol::trusted(const std::string& origin) const {
  return service_->trusted(origin);
}

std::string Protocol::refused(ErrorCode code, const std::string& origin, const std::string& detail,
                              bool record) {
  if (record) service_->audit_refusal(origin, {}, code, detail);
  return wire::refusal(Error(code, detail));
}

std::shared_ptr<transport::Handler> Protocol::open(const std::string& origin,
                                                   std::shared_ptr<transport::Channel> channel,
                                                   boost::asio::any_io_executor executor) {
  auto c = std::make_shared<Connection>(shared_from_this(), origin, std::move(channel),
                                        std::move(executor));
  const std::lock_guard lock(mutex_);
  std::erase_if(connections_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
  connections_.push_back(c);
  return c;
}

void Protocol::broadcast(const std::string& text) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& w : connections_) {
      if (auto c = w.lock()) live.push_back(std::move(c));
    }
  }
  for (const auto& c : live) {
    if (service_->trusted(c->origin())) c->notify(text);
  }
}

// ---- Connection --------------------------------------------------------------------------------

Connection::Connection(std::shared_ptr<Protocol> protocol, std::string origin,
                       std::shared_ptr<transport::Channel> channel,
                       boost::asio::any_io_executor executor)
    : protocol_(std::move(protocol)),
      origin_(std::move(origin)),
      channel_(std::move(channel)),
      executor_(std::move(executor)),
      batches_(std::make_unique<Batches>()) {}

Connection::~Connection() = default;

const firmware_config::AgentLimits& Connection::limits() const noexcept {
  return service().config().limits;
}

Transfers& Connection::transfers() {
  if (!transfers_) transfers_ = std::make_unique<Transfers>(service().config().state_dir);
  return *transfers_;
}

void Connection::respond(const Id& id, const json& result) {
  send(wire::result(id, result));
}

void Connection::fail(const Id& id, const Error& e) {
  send(wire::error(id, e));
}

void Connection::on_message(std::string message, bool text) {
  if (!text) {
    return fail(nullptr, Error(ErrorCode::BadRequest, "binary frames are not part of protocol v1"));
  }
  dispatch(message);
}

void Connection::dispatch(std::string_view text) {
  json id;
  try {
    const Request req = parse_request(text, id);
    const Method* m = find_method(req.method);
    if (m == nullptr) throw Error(ErrorCode::NotSupported, "unknown method '" + req.method + "'");
    if (m->trust == Trust::Trusted && !service().trusted(origin_)) {
      const auto role = req.params->find("role");
      service().audit_refusal(
          origin_, role != req.params->end() && role->is_string() ? role->get<std::string>() : "",
          ErrorCode::OriginNotPaired, req.method);
      throw Error(ErrorCode::OriginNotPaired, "origin " + origin_ + " is not paired");
    }
    if (m->limited && in_flight_ >= limits().max_in_flight) {
      throw Error(ErrorCode::Busy, "too many requests in flight on this connection");
    }
    m->run(*this, req.id, *req.params);
  } catch (const Error& e) {
    fail(id, e);
  } catch (const std::exception& e) {
    // Whatever a page sends, the connection answers and lives on.
    fail(id, Error(ErrorCode::Internal, e.what()));
  }
}

void Connection::on_close() {
  const std::lock_guard lock(flags_mutex_);
  closed_ = true;
  for (const auto& f : flags_) f->store(true);
}

void Connection::watch(const std::shared_ptr<std::atomic<bool>>& f) {
  const std::lock_guard lock(flags_mutex_);
  flags_.push_back(f);
  if (closed_) f->store(true);
}

void Connection::unwatch(const std::shared_ptr<std::atomic<bool>>& f) {
  const std::lock_guard lock(flags_mutex_);
  std::erase(flags_, f);
}

void Connection::notify(std::string text) {
  post_back([self = shared_from_this(), text = std::move(text)]() mutable {
    self->send(std::move(text));  // on the executor: never waits
  });
}

}  // namespace kyso::agent::protocol
