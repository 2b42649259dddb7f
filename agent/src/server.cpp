#include "kyso/agent/server.hpp"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "activation.hpp"
#include "kyso/agent/peer.hpp"
#include "kyso/agent/uploads.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/text.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::agent {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr auto kUpgradeTimeout = std::chrono::seconds(10);
constexpr auto kRefreshPeriod = std::chrono::seconds(2);
constexpr std::size_t kMaxIdLength = 64;
constexpr std::size_t kWorkerThreads = 2;
constexpr std::size_t kMaxProgressIntervalMs = 60000;
constexpr auto kPeerTimeout = std::chrono::seconds(30);

/// What every session needs to see of the server, thread-safe.
class SessionBase {
 public:
  SessionBase() = default;
  virtual ~SessionBase() = default;
  SessionBase(const SessionBase&) = delete;
  SessionBase& operator=(const SessionBase&) = delete;
  SessionBase(SessionBase&&) = delete;
  SessionBase& operator=(SessionBase&&) = delete;
  /// Queues a token event (sent only when the origin is trusted). Any thread.
  virtual void post_event(std::shared_ptr<const std::string> text) = 0;
  /// Cancels the session's dialogs and jobs and closes it. Any thread.
  virtual void shutdown() = 0;
};

std::string six_digit_code() {
  std::uint32_t r = 0;
  random_bytes({reinterpret_cast<std::uint8_t*>(&r), sizeof r});
  auto s = std::to_string(r % 1000000U);
  s.insert(0, 6 - s.size(), '0');
  return s.substr(0, 3) + " " + s.substr(3);
}

/// JSON text is built by hand on the batch's hot path (events, the summary): one growing
/// string per message instead of a tree of nodes per item.
void append_uint(std::string& out, std::size_t v) {
  std::array<char, 24> buf{};
  const auto end = std::to_chars(buf.data(), buf.data() + buf.size(), v).ptr;
  out.append(buf.data(), end);
}

void append_base64(std::string& out, std::span<const std::uint8_t> data) {
  const std::size_t at = out.size();
  out.resize(at + 4 * ((data.size() + 2) / 3));
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at), data.data(),
                                static_cast<int>(data.size()));
  out.resize(at + static_cast<std::size_t>(n));
}

/// A JSON string value (quoted, escaped) of text that needs no escaping in practice (hex ids,
/// algorithm names); nlohmann's serializer makes sure of it.
void append_json_string(std::string& out, std::string_view s) {
  out += json(s).dump();
}

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  explicit Impl(std::shared_ptr<Service> s)
      : service(std::move(s)), workers(kWorkerThreads), refresh_timer(ioc) {}

  std::shared_ptr<Service> service;
  net::io_context ioc{1};
  std::optional<net::ssl::context> ssl;
  net::thread_pool workers;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::uint16_t port = 0;
  std::atomic<std::size_t> connections{0};
  std::mutex sessions_mutex;
  std::vector<std::weak_ptr<SessionBase>> sessions;
  std::vector<std::thread> threads;
  net::steady_timer refresh_timer;
  std::unique_ptr<pkcs11::UsbWatcher> usb;
  std::mutex tokens_mutex;
  std::optional<std::map<std::string, json>> known_tokens;  // identity -> token json
  std::atomic<bool> refresh_queued{false};
  std::atomic<bool> stopped{false};

  void bind();
  void do_accept(tcp::acceptor& a);
  void on_accept(tcp::acceptor& a, beast::error_code ec, tcp::socket socket);
  void add_session(const std::shared_ptr<SessionBase>& s);
  void broadcast(const json& event);
  void schedule_refresh();
  void queue_refresh();
  void refresh_tokens();
  [[nodiscard]] bool host_ok(std::string_view host) const;
  [[nodiscard]] std::string status_json() const;
};

namespace {

struct Batch {
  json id;
  SignJob job;
  std::size_t total = 0;
  std::size_t progress_every = 1;
  /// progressInterval: coalesced events, one at most every this long (0: not coalesced).
  std::chrono::milliseconds progress_interval{0};
  /// signaturesInEvents: coalesced events carry their items' signatures; the summary does not.
  bool signatures_in_events = false;
  enum class State { Collecting, Running, Done } state = State::Collecting;
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

/// One connection: HTTP upgrade (with every check before accepting), then protocol v1. All
/// members are touched on the connection's strand only, except `job_flags_` (mutex) and the
/// atomics.
template <class NextLayer>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<NextLayer>> {
 public:
  static constexpr bool kTls = std::is_same_v<NextLayer, beast::ssl_stream<beast::tcp_stream>>;

  template <typename... Args>
  Session(std::shared_ptr<Server::Impl> server, Args&&... args)
      : ws_(std::forward<Args>(args)...),
        idle_timer_(ws_.get_executor()),
        server_(std::move(server)),
        limits_(server_->service->config().limits),
        state_dir_(server_->service->config().state_dir.empty()
                       ? default_state_dir()
                       : server_->service->config().state_dir) {}

  ~Session() override {
    if (counted_) server_->connections.fetch_sub(1);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  void run() {
    net::dispatch(ws_.get_executor(),
                  beast::bind_front_handler(&Session::on_run, this->shared_from_this()));
  }

  void post_event(std::shared_ptr<const std::string> text) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), text = std::move(text)] {
      if (self->accepted_ && !self->closed_ && self->server_->service->trusted(self->origin_)) {
        self->send_raw(text);
      }
    });
  }

  void shutdown() override {
    cancel_jobs();
    net::post(ws_.get_executor(), [self = this->shared_from_this()] {
      self->idle_timer_.cancel();
      if (self->closed_) return;
      self->closed_ = true;
      beast::error_code ec;
      beast::get_lowest_layer(self->ws_).socket().close(ec);
    });
  }

 private:
  // ---- HTTP upgrade --------------------------------------------------------------------------

  void on_run() {
    beast::get_lowest_layer(ws_).expires_after(kUpgradeTimeout);
    if constexpr (kTls) {
      ws_.next_layer().async_handshake(
          net::ssl::stream_base::server,
          beast::bind_front_handler(&Session::on_handshake, this->shared_from_this()));
    } else {
      do_read_request();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (ec) return;  // not a TLS client, or gone: nothing to answer
    do_read_request();
  }

  void do_read_request() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(0);
    http::async_read(
        ws_.next_layer(), buffer_, *parser_,
        beast::bind_front_handler(&Session::on_read_request, this->shared_from_this()));
  }

  void on_read_request(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;  // timeout, oversized header or a body: drop the connection
    const auto& req = parser_->get();
    const std::string host(req[http::field::host]);
    if (!server_->host_ok(host)) {
      server_->service->audit_refusal(std::string(req[http::field::origin]), {},
                                      ErrorCode::BadRequest, "Host header '" + host + "'");
      return refuse(http::status::forbidden, ErrorCode::BadRequest,
                    "Host must be 127.0.0.1, localhost or [::1] with the agent's port");
    }
    if (!websocket::is_upgrade(req)) {
      if (req.method() == http::verb::get && req.target() == "/") return send_status();
      return refuse(http::status::not_found, ErrorCode::BadRequest, "only GET / and WebSocket");
    }
    const auto origin_it = req.find(http::field::origin);
    if (origin_it == req.end()) {
      server_->service->audit_refusal({}, {}, ErrorCode::OriginForbidden, "no Origin header");
      return refuse(http::status::forbidden, ErrorCode::OriginForbidden, "no Origin header");
    }
    origin_ = normalize_origin(origin_it->value());
    auto& svc = *server_->service;
    if (!svc.allow_listed(origin_) && !svc.pairings().contains(origin_) &&
        !origin_pairable(origin_)) {
      server_->service->audit_refusal(origin_, {}, ErrorCode::OriginForbidden, "upgrade refused");
      return refuse(http::status::forbidden, ErrorCode::OriginForbidden,
                    "origin " + origin_ + " is neither allow-listed, paired nor pairable");
    }
    if (server_->connections.fetch_add(1) >= limits_.max_connections) {
      server_->connections.fetch_sub(1);
      return refuse(http::status::service_unavailable, ErrorCode::Busy, "too many connections");
    }
    counted_ = true;

    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = kUpgradeTimeout;
    // Beast's own timeout finds dead peers (a ping, then silence); the idle timeout proper is
    // "no message for idle_timeout", kept by arm_idle() below.
    t.idle_timeout =
        std::max<std::chrono::steady_clock::duration>(limits_.idle_timeout, kPeerTimeout);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    // Browsers send each message as one frame: the frame limit bounds every v1 message.
    ws_.read_message_max(std::min(limits_.max_frame_bytes, limits_.max_message_bytes));
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "kyso-agent/" + std::string(kAgentVersion));
    }));
    ws_.async_accept(req, beast::bind_front_handler(&Session::on_accept, this->shared_from_this()));
  }

  void refuse(http::status status, ErrorCode code, std::string detail) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::content_type, "application/json");
    res->set(http::field::server, "kyso-agent/" + std::string(kAgentVersion));
    res->keep_alive(false);
    res->body() = json{{"error", error_json(Error(code, std::move(detail)))}}.dump();
    res->prepare_payload();
    write_http(std::move(res));
  }

  void send_status() {
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
    res->set(http::field::content_type, "application/json");
    res->set(http::field::server, "kyso-agent/" + std::string(kAgentVersion));
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(false);
    res->body() = server_->status_json();
    res->prepare_payload();
    write_http(std::move(res));
  }

  void write_http(std::shared_ptr<http::response<http::string_body>> res) {
    http::async_write(ws_.next_layer(), *res,
                      [self = this->shared_from_this(), res](beast::error_code, std::size_t) {
                        beast::error_code ec;
                        beast::get_lowest_layer(self->ws_).socket().shutdown(
                            tcp::socket::shutdown_both, ec);
                      });
  }

  void on_accept(beast::error_code ec) {
    if (ec) return;
    accepted_ = true;
    buffer_.consume(buffer_.size());
    server_->add_session(this->shared_from_this());
    last_activity_ = std::chrono::steady_clock::now();
    arm_idle(last_activity_ + limits_.idle_timeout);
    do_read();
  }

  // ---- idle timeout: no message either way for idle_timeout, and nothing in flight ------------

  void arm_idle(std::chrono::steady_clock::time_point at) {
    if (limits_.idle_timeout.count() <= 0) return;
    idle_timer_.expires_at(at);
    idle_timer_.async_wait(beast::bind_front_handler(&Session::on_idle, this->shared_from_this()));
  }

  void on_idle(beast::error_code ec) {
    if (ec || closed_) return;
    const auto now = std::chrono::steady_clock::now();
    if (in_flight_ > 0) return arm_idle(now + limits_.idle_timeout);  // a dialog or a batch
    if (now < last_activity_ + limits_.idle_timeout) {
      return arm_idle(last_activity_ + limits_.idle_timeout);
    }
    closed_ = true;
    cancel_jobs();
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "idle"),
                    [self = this->shared_from_this()](beast::error_code) {
                      beast::error_code e;
                      beast::get_lowest_layer(self->ws_).socket().close(e);
                    });
  }

  // ---- reading and writing -------------------------------------------------------------------

  void do_read() {
    if (reading_ || closed_ || queue_.size() >= limits_.write_queue) return;
    reading_ = true;
    ws_.async_read(buffer_, beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    reading_ = false;
    if (ec) {
      // Closed by the peer, idle timeout, or a frame over the limit (Beast closes with 1009).
      closed_ = true;
      idle_timer_.cancel();
      cancel_jobs();
      return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    const bool text = ws_.got_text();
    std::string msg = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    if (!text) {
      send_error(nullptr,
                 Error(ErrorCode::BadRequest, "binary frames are not part of protocol v1"));
    } else {
      handle(msg);
    }
    do_read();
  }

  void send(const json& j) { send_raw(std::make_shared<const std::string>(j.dump())); }

  void send_raw(std::shared_ptr<const std::string> text) {
    if (closed_) return;
    queued_events_->fetch_add(1);
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) do_write();
  }

  void do_write() {
    ws_.text(true);
    ws_.async_write(net::buffer(*queue_.front()),
                    beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) {
      closed_ = true;
      idle_timer_.cancel();
      cancel_jobs();
      queue_.clear();
      return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    queue_.pop_front();
    queued_events_->fetch_sub(1);
    if (!queue_.empty()) do_write();
    do_read();  // resumes reading when the queue had paused it
  }

  void respond(const json& id, json result) {
    send(json{{"id", id}, {"result", std::move(result)}});
  }

  void send_error(const json& id, const Error& e) {
    if (e.code() == ErrorCode::Internal) spdlog::warn("request {}: {}", id.dump(), e.detail());
    send(json{{"id", id}, {"error", error_json(e)}});
  }

  // ---- protocol ------------------------------------------------------------------------------

  void handle(const std::string& text) {
    json msg = json::parse(text, nullptr, false);
    json id = nullptr;
    if (msg.is_object()) {
      if (const auto it = msg.find("id"); it != msg.end()) {
        if ((it->is_string() && it->get_ref<const std::string&>().size() <= kMaxIdLength) ||
            it->is_number_integer()) {
          id = *it;
        }
      }
    }
    if (msg.is_discarded() || !msg.is_object()) {
      return send_error(nullptr, Error(ErrorCode::BadRequest, "not a JSON object"));
    }
    if (id.is_null()) {
      return send_error(nullptr,
                        Error(ErrorCode::BadRequest, "id must be a string (<= 64) or integer"));
    }
    const auto m = msg.find("method");
    if (m == msg.end() || !m->is_string()) {
      return send_error(id, Error(ErrorCode::BadRequest, "method missing"));
    }
    const std::string method = m->get<std::string>();
    json params = msg.value("params", json::object());
    if (!params.is_object())
      return send_error(id, Error(ErrorCode::BadRequest, "params must be an object"));
    try {
      if (method == "hello") return hello(id, params);
      if (method == "pair") return pair(id);
      const bool transfer = method.starts_with("upload.") || method.starts_with("download.");
      if (method != "credentials.list" && method != "sign" && method != "batch.sign" &&
          method != "batch.items" && method != "batch.cancel" && !transfer) {
        throw Error(ErrorCode::NotSupported, "unknown method '" + method + "'");
      }
      if (!server_->service->trusted(origin_)) {
        const auto role = params.find("role");
        server_->service->audit_refusal(
            origin_, role != params.end() && role->is_string() ? role->get<std::string>() : "",
            ErrorCode::OriginNotPaired, method);
        throw Error(ErrorCode::OriginNotPaired, "origin " + origin_ + " is not paired");
      }
      if (transfer) return respond(id, transfers().handle(method, params));
      if (method == "batch.items") return batch_items(id, params);
      if (method == "batch.cancel") return batch_cancel(id, params);
      if (in_flight_ >= limits_.max_in_flight) {
        throw Error(ErrorCode::Busy, "too many requests in flight on this connection");
      }
      if (method == "credentials.list") return credentials_list(id, params);
      if (method == "sign") return sign(id, params);
      return batch_sign(id, params);
    } catch (const Error& e) {
      send_error(id, e);
    }
  }

  void hello(const json& id, const json& params) {
    if (const auto l = params.find("language"); l != params.end() && l->is_string()) {
      lang_ = parse_language(l->get<std::string>());
    }
    if (const auto p = params.find("protocols"); p != params.end()) {
      if (!p->is_array() || std::ranges::none_of(*p, [](const json& v) {
            return v.is_number_integer() && v.get<int>() == kProtocolVersion;
          })) {
        throw Error(ErrorCode::NotSupported, "this agent speaks protocol 1 only");
      }
    }
    const auto& svc = *server_->service;
    const auto& lim = svc.config().limits;
    const bool tsa = !svc.config().tsa_url.empty();
    const TransferLimits tl;
    json caps = {
        {"itemTypes", {"hash", "xml", "pdf", "cms"}},
        {"documents",
         {{"xml",
           {{"profiles",
             tsa ? json{"xmldsig", "xades-b-b", "xades-b-t"} : json{"xmldsig", "xades-b-b"}}}},
          {"pdf", {{"levels", tsa ? json{"b-b", "b-t"} : json{"b-b"}}}},
          {"cms", {{"levels", tsa ? json{"b-b", "b-t"} : json{"b-b"}}}},
          {"timestamps", tsa},
          {"certificateChecks", !svc.config().trust_anchors.empty()},
          {"uploads",
           {{"chunkBytes", tl.max_chunk_bytes},
            {"maxDocumentBytes", tl.max_document_bytes},
            {"maxConnectionBytes", tl.max_connection_bytes},
            {"inlineResultBytes", tl.inline_result_bytes}}}}},
        {"hashAlgorithms", {"sha256", "sha384", "sha512"}},
        {"algorithms",
         {"rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-pss-sha256", "rsa-pss-sha384",
          "rsa-pss-sha512", "ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512"}},
        {"roles", {"teacher", "principal", "seal"}},
        {"batch", true},
        {"maxBatchItems", lim.max_batch_items},
        {"maxInFlight", lim.max_in_flight},
        {"progressInterval", true},
        {"signaturesInEvents", true},
        {"remote", false},
    };
    respond(id, {{"agent", "kyso-agent"},
                 {"version", std::string(kAgentVersion)},
                 {"protocol", kProtocolVersion},
                 {"protocols", {kProtocolVersion}},
                 {"origin", origin_},
                 {"paired", svc.trusted(origin_)},
                 {"allowListed", svc.allow_listed(origin_)},
                 {"capabilities", caps}});
  }

  void pair(const json& id) {
    auto& svc = *server_->service;
    if (svc.trusted(origin_)) return respond(id, {{"paired", true}, {"origin", origin_}});
    if (!origin_pairable(origin_)) {
      throw Error(ErrorCode::OriginForbidden, "origin " + origin_ + " cannot be paired");
    }
    if (in_flight_ >= limits_.max_in_flight) throw Error(ErrorCode::Busy, "too many requests");
    if (!svc.try_begin_job()) throw Error(ErrorCode::Busy, "another dialog is open");
    const std::string code = six_digit_code();
    send(json{
        {"event", "pair.code"},
        {"id", id},
        {"params", {{"code", code}, {"expiresIn", svc.config().limits.approval_timeout.count()}}}});
    auto flag = new_job_flag();
    ++in_flight_;
    net::post(server_->workers, [self = this->shared_from_this(), id, code, flag] {
      std::optional<Error> err;
      try {
        self->server_->service->pair(self->origin_, code, self->lang_, flag.get());
      } catch (const Error& e) {
        err = e;
      } catch (const std::exception& e) {
        err = Error(ErrorCode::Internal, e.what());
      }
      self->server_->service->end_job();
      net::post(self->ws_.get_executor(), [self, id, err, flag] {
        --self->in_flight_;
        self->drop_job_flag(flag);
        if (err) return self->send_error(id, *err);
        self->respond(id, {{"paired", true}, {"origin", self->origin_}});
      });
    });
  }

  void credentials_list(const json& id, const json& params) {
    ++in_flight_;
    net::post(server_->workers, [self = this->shared_from_this(), id, params] {
      json result;
      std::optional<Error> err;
      try {
        result = self->server_->service->list_credentials(params, self->origin_, self->lang_);
      } catch (const Error& e) {
        err = e;
      } catch (const std::exception& e) {
        err = Error(ErrorCode::Internal, e.what());
      }
      net::post(self->ws_.get_executor(), [self, id, result = std::move(result), err]() mutable {
        --self->in_flight_;
        if (err) return self->send_error(id, *err);
        self->respond(id, std::move(result));
      });
    });
  }

  /// role, credentialId, algorithm, signatureEncoding: shared by sign and batch.sign.
  SignJob parse_job(const json& p, bool batch) {
    SignJob job;
    job.origin = origin_;
    job.batch = batch;
    job.language = lang_;
    const auto role = p.find("role");
    if (role == p.end() || !role->is_string()) throw Error(ErrorCode::BadRequest, "role missing");
    const auto r = parse_role(role->get<std::string>());
    if (!r) throw Error(ErrorCode::BadRequest, "role must be teacher, principal or seal");
    job.role = *r;
    if (const auto c = p.find("credentialId"); c != p.end()) {
      if (!c->is_string()) throw Error(ErrorCode::BadRequest, "credentialId must be a string");
      job.credential_id = c->get<std::string>();
    }
    if (const auto a = p.find("algorithm"); a != p.end()) {
      const auto alg = a->is_string() ? parse_sign_algorithm(a->get<std::string>()) : std::nullopt;
      if (!alg) throw Error(ErrorCode::BadRequest, "unknown algorithm");
      job.algorithm = alg;
    }
    if (const auto e = p.find("signatureEncoding"); e != p.end()) {
      if (*e == "raw")
        job.encoding = SignatureEncoding::Raw;
      else if (*e != "der")
        throw Error(ErrorCode::BadRequest, "signatureEncoding is der or raw");
    }
    return job;
  }

  void sign(const json& id, const json& params) {
    SignJob job = parse_job(params, false);
    const auto item = params.find("item");
    if (item == params.end()) throw Error(ErrorCode::BadRequest, "item missing");
    job.items.push_back(parse_item(*item, &transfers()));
    start_job(id, std::move(job), nullptr);
  }

  void batch_sign(const json& id, const json& params) {
    SignJob job = parse_job(params, true);
    const auto items = params.find("items");
    if (items == params.end() || !items->is_array() || items->empty()) {
      throw Error(ErrorCode::BadRequest, "items must be a non-empty array");
    }
    std::size_t total = items->size();
    if (const auto t = params.find("total"); t != params.end()) {
      if (!t->is_number_unsigned() || t->get<std::size_t>() == 0) {
        throw Error(ErrorCode::BadRequest, "total must be a positive integer");
      }
      total = t->get<std::size_t>();
    }
    if (total > limits_.max_batch_items) {
      throw Error(ErrorCode::BatchLimit,
                  "a batch holds at most " + std::to_string(limits_.max_batch_items) + " items");
    }
    if (items->size() > total) {
      throw Error(ErrorCode::BatchLimit, std::to_string(items->size()) +
                                             " items sent for a batch of " + std::to_string(total));
    }
    const std::string key = id.dump();
    if (batches_.contains(key)) throw Error(ErrorCode::BadRequest, "batch id already used");
    job.items.reserve(total);
    for (const auto& i : *items) job.items.push_back(parse_item(i, &transfers()));
    auto b = std::make_shared<Batch>();
    b->id = id;
    b->total = total;
    if (const auto e = params.find("progressEvery"); e != params.end()) {
      if (!e->is_number_unsigned() || e->get<std::size_t>() == 0) {
        throw Error(ErrorCode::BadRequest, "progressEvery must be a positive integer");
      }
      b->progress_every = e->get<std::size_t>();
    }
    if (const auto e = params.find("progressInterval"); e != params.end()) {
      if (!e->is_number_unsigned() || e->get<std::size_t>() == 0 ||
          e->get<std::size_t>() > kMaxProgressIntervalMs) {
        throw Error(ErrorCode::BadRequest, "progressInterval must be 1.." +
                                               std::to_string(kMaxProgressIntervalMs) + " ms");
      }
      b->progress_interval = std::chrono::milliseconds(e->get<std::size_t>());
    }
    if (const auto e = params.find("signaturesInEvents"); e != params.end()) {
      if (!e->is_boolean())
        throw Error(ErrorCode::BadRequest, "signaturesInEvents is true or false");
      b->signatures_in_events = e->get<bool>();
      if (b->signatures_in_events && b->progress_interval.count() == 0) {
        throw Error(ErrorCode::BadRequest, "signaturesInEvents needs progressInterval");
      }
    }
    b->job = std::move(job);
    batches_[key] = b;
    ++in_flight_;  // the batch counts from now until its summary
    if (b->job.items.size() == total) run_batch(b);
  }

  void batch_items(const json& id, const json& params) {
    const auto bid = params.find("batchId");
    const auto items = params.find("items");
    if (bid == params.end() || items == params.end() || !items->is_array()) {
      throw Error(ErrorCode::BadRequest, "batchId and items are required");
    }
    const auto it = batches_.find(bid->dump());
    if (it == batches_.end()) throw Error(ErrorCode::BadRequest, "unknown batchId " + bid->dump());
    auto& b = *it->second;
    if (b.state != Batch::State::Collecting) {
      throw Error(ErrorCode::BatchLimit, "the batch's approval is already used; items beyond its " +
                                             std::to_string(b.total) + " are not signed");
    }
    if (b.job.items.size() + items->size() > b.total) {
      throw Error(ErrorCode::BatchLimit,
                  "more items than the batch's total of " + std::to_string(b.total));
    }
    for (const auto& i : *items) b.job.items.push_back(parse_item(i, &transfers()));
    respond(id, {{"received", b.job.items.size()}, {"total", b.total}});
    if (b.job.items.size() == b.total) run_batch(it->second);
  }

  void batch_cancel(const json& id, const json& params) {
    const auto bid = params.find("batchId");
    if (bid == params.end()) throw Error(ErrorCode::BadRequest, "batchId is required");
    const auto it = batches_.find(bid->dump());
    if (it == batches_.end()) throw Error(ErrorCode::BadRequest, "unknown batchId " + bid->dump());
    auto& b = *it->second;
    if (b.state == Batch::State::Done) return respond(id, {{"cancelled", false}});
    b.cancel->store(true);
    if (b.state == Batch::State::Collecting) {
      b.state = Batch::State::Done;
      --in_flight_;
      send_error(b.id, Error(ErrorCode::UserCancelled, "batch cancelled before it started"));
    }
    respond(id, {{"cancelled", true}});
  }

  void run_batch(const std::shared_ptr<Batch>& b) {
    b->state = Batch::State::Running;
    // The in-flight slot was taken when the batch was announced.
    --in_flight_;
    try {
      if (b->signatures_in_events && b->job.items.front().document) {
        throw Error(ErrorCode::BadRequest, "signaturesInEvents is for hash items");
      }
      start_job(b->id, b->job, b);
    } catch (const Error& e) {
      b->state = Batch::State::Done;
      send_error(b->id, e);
    }
  }

  void start_job(const json& id, SignJob job, const std::shared_ptr<Batch>& batch) {
    if (!server_->service->try_begin_job()) {
      throw Error(ErrorCode::Busy, "another approval or signing job is running");
    }
    ++in_flight_;
    if (job.items.front().document) job.scratch = transfers().dir();
    auto flag = batch ? batch->cancel : std::make_shared<std::atomic<bool>>(false);
    add_job_flag(flag);
    net::post(server_->workers, [self = this->shared_from_this(), id, job = std::move(job), batch,
                                 flag] { self->work(id, job, batch, flag); });
  }

  /// batch.progress events, built in item order on the job's reporting thread, after each
  /// item's audit row is committed (detail::run_ordered). Per item, every k-th item
  /// (progressEvery), or coalesced: at most one event every progressInterval, carrying every item
  /// finished since the last one.
  class ProgressEvents {
   public:
    ProgressEvents(Session& session, const json& id, const Batch& b)
        : session_(session),
          id_(id.dump()),
          total_(b.job.items.size()),
          every_(b.progress_every),
          interval_(b.progress_interval),
          signatures_(b.signatures_in_events),
          sent_(signatures_ ? total_ : 0, 0) {}

    /// With signaturesInEvents: which items' signatures went out in an event (a remote
    /// credential reports results without them; the summary carries those).
    [[nodiscard]] const std::vector<char>* sent() const { return signatures_ ? &sent_ : nullptr; }

    void add(std::size_t index, const SignResult& r) {
      ++done_;
      const bool last = done_ == total_;
      if (interval_.count() > 0) {
        if (!r.ok()) {
          failed_ += failed_.empty() ? "[" : ",";
          failed_ += "{\"index\":";
          append_uint(failed_, index);
          failed_ += ",\"error\":";
          failed_ += error_json(*r.error).dump();
          failed_ += '}';
        } else if (signatures_ && !r.signature.empty()) {
          sent_[index] = 1;
          signed_ += signed_.empty() ? "[{\"index\":" : ",{\"index\":";
          append_uint(signed_, index);
          signed_ += ",\"signature\":\"";
          append_base64(signed_, r.signature);
          signed_ += "\"}";
        }
        // The first item at once (the page sees the signing start), then by time, and the last.
        const auto now = std::chrono::steady_clock::now();
        if (done_ != 1 && !last && now - sent_at_ < interval_) return;
        sent_at_ = now;
        std::string text = head(index, r.ok());
        text += ",\"from\":";
        append_uint(text, from_);
        text += ",\"failed\":";
        text += failed_.empty() ? "[]" : failed_ + "]";
        if (signatures_) {
          text += ",\"signatures\":";
          text += signed_.empty() ? "[]" : signed_ + "]";
          signed_.clear();
        }
        text += "}}";
        failed_.clear();
        from_ = done_;
        return session_.push_from_worker(std::move(text));
      }
      // With progressEvery k: the first item (the page sees the signing start), every k-th
      // item, every failed item and the last one.
      if (every_ > 1 && r.ok() && done_ != 1 && done_ % every_ != 0 && !last) return;
      std::string text = head(index, r.ok());
      if (!r.ok()) {
        text += ",\"error\":";
        text += error_json(*r.error).dump();
      }
      text += "}}";
      session_.push_from_worker(std::move(text));
    }

   private:
    std::string head(std::size_t index, bool ok) const {
      std::string text;
      text.reserve(160);
      text += R"({"event":"batch.progress","id":)";
      text += id_;
      text += R"(,"params":{"done":)";
      append_uint(text, done_);
      text += R"(,"total":)";
      append_uint(text, total_);
      text += R"(,"index":)";
      append_uint(text, index);
      text += ok ? R"(,"ok":true)" : R"(,"ok":false)";
      return text;
    }

    Session& session_;
    std::string id_;
    std::size_t total_;
    std::size_t every_;
    std::chrono::milliseconds interval_;
    bool signatures_;
    std::vector<char> sent_;
    std::size_t done_ = 0;
    std::size_t from_ = 0;
    std::string failed_;
    std::string signed_;  ///< with signaturesInEvents: the covered items' signatures
    std::chrono::steady_clock::time_point sent_at_{};
  };

  /// From a job's thread: queues a message for this connection. Several messages queued
  /// while the io thread is busy cost one handoff. Waits while the connection's queue is full:
  /// a page that reads slowly slows the batch instead of growing memory.
  void push_from_worker(std::string text) {
    while (queued_events_->load() >= limits_.write_queue && !closed_flag_->load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    queued_events_->fetch_add(1);
    bool post = false;
    {
      const std::lock_guard lock(outbox_mutex_);
      outbox_.push_back(std::move(text));
      post = !std::exchange(outbox_posted_, true);
    }
    if (post) {
      net::post(ws_.get_executor(), [self = this->shared_from_this()] { self->drain_outbox(); });
    }
  }

  void drain_outbox() {
    std::vector<std::string> ready;
    {
      const std::lock_guard lock(outbox_mutex_);
      ready.swap(outbox_);
      outbox_posted_ = false;
    }
    if (closed_) {
      queued_events_->fetch_sub(ready.size());
      return;
    }
    const bool idle = queue_.empty();
    for (auto& t : ready) queue_.push_back(std::make_shared<const std::string>(std::move(t)));
    if (idle && !queue_.empty()) do_write();
  }

  /// Runs on the worker pool.
  void work(const json& id, const SignJob& job, const std::shared_ptr<Batch>& batch,
            const std::shared_ptr<std::atomic<bool>>& flag) {
    std::optional<SignOutcome> outcome;
    std::optional<Error> err;
    std::optional<ProgressEvents> events;
    Service::Progress progress;
    if (batch) {
      events.emplace(*this, id, *batch);
      progress = [&events](std::size_t index, const SignResult& r) { events->add(index, r); };
    }
    try {
      outcome = server_->service->sign(job, *flag, progress);
    } catch (const Error& e) {
      err = e;
    } catch (const std::exception& e) {
      err = Error(ErrorCode::Internal, e.what());
    }
    server_->service->end_job();
    // The answer is built here, off the io thread (signed documents on the strand: transfers).
    std::string answer;
    std::optional<SignOutcome> documents;
    if (err) {
      answer = error_message(id, *err);
    } else if (!outcome->documents.empty()) {
      documents = std::move(outcome);
    } else if (batch) {
      answer = batch_summary(id, *outcome, events->sent());
    } else {
      answer = sign_result(id, *outcome, to_hex(job.items.front().digest));
    }
    net::post(ws_.get_executor(), [self = this->shared_from_this(), id, batch, flag,
                                   answer = std::move(answer),
                                   documents = std::move(documents)]() mutable {
      --self->in_flight_;
      self->drop_job_flag(flag);
      if (batch) {
        batch->state = Batch::State::Done;
        batch->job = SignJob{};  // only the id and its "done" state stay, to refuse more items
      }
      if (documents) {
        json chain = json::array();
        for (const auto& c : documents->credential.chain) chain.push_back(to_base64(c));
        return self->finish_documents(id, *documents, batch != nullptr, std::move(chain));
      }
      self->send_raw(std::make_shared<const std::string>(std::move(answer)));
    });
    // Off the batch's path: the answer is on its way.
    server_->service->audit().checkpoint();
  }

  static std::string error_message(const json& id, const Error& e) {
    if (e.code() == ErrorCode::Internal) spdlog::warn("request {}: {}", id.dump(), e.detail());
    return json{{"id", id}, {"error", error_json(e)}}.dump();
  }

  static std::string sign_result(const json& id, const SignOutcome& o, const std::string& hash) {
    const auto& r = o.results.front();
    if (!r.ok()) return error_message(id, *r.error);
    json chain = json::array();
    for (const auto& c : o.credential.chain) chain.push_back(to_base64(c));
    return json{{"id", id},
                {"result",
                 {{"signature", to_base64(r.signature)},
                  {"algorithm", std::string(to_string(o.algorithm))},
                  {"credentialId", o.credential.id()},
                  {"certificate", to_base64(o.credential.cert.der)},
                  {"chain", chain},
                  {"hash", hash}}}}
        .dump();
  }

  /// The batch's summary, one entry per item in order; built as text (2,000 signatures).
  /// An item whose signature went out in an event (`sent`, signaturesInEvents) says only ok.
  static std::string batch_summary(const json& id, const SignOutcome& o,
                                   const std::vector<char>* sent) {
    std::size_t ok = 0;
    std::size_t sig_bytes = 0;
    for (const auto& r : o.results) {
      ok += r.ok() ? 1U : 0U;
      sig_bytes += r.signature.size();
    }
    std::string t;
    t.reserve(512 + 4 * (o.credential.cert.der.size() + sig_bytes) / 3 + 48 * o.results.size());
    t += R"({"id":)";
    t += id.dump();
    t += R"(,"result":{"total":)";
    append_uint(t, o.results.size());
    t += R"(,"signed":)";
    append_uint(t, ok);
    t += R"(,"failed":)";
    append_uint(t, o.results.size() - ok);
    t += o.cancelled ? R"(,"cancelled":true)" : R"(,"cancelled":false)";
    t += R"(,"credentialId":)";
    append_json_string(t, o.credential.id());
    t += R"(,"algorithm":)";
    append_json_string(t, to_string(o.algorithm));
    t += R"(,"certificate":")";
    append_base64(t, o.credential.cert.der);
    t += R"(","chain":[)";
    for (std::size_t i = 0; i < o.credential.chain.size(); ++i) {
      t += i == 0 ? "\"" : ",\"";
      append_base64(t, o.credential.chain[i]);
      t += '"';
    }
    t += R"(],"results":[)";
    for (std::size_t i = 0; i < o.results.size(); ++i) {
      const auto& r = o.results[i];
      t += i == 0 ? R"({"index":)" : R"(,{"index":)";
      append_uint(t, i);
      if (r.ok() && sent != nullptr && (*sent)[i] != 0) {
        t += R"(,"ok":true})";
      } else if (r.ok()) {
        t += R"(,"ok":true,"signature":")";
        append_base64(t, r.signature);
        t += "\"}";
      } else {
        t += R"(,"ok":false,"error":)";
        t += error_json(*r.error).dump();
        t += '}';
      }
    }
    t += "]}}";
    return t;
  }

  /// Signed documents go back inline while they are small, else as downloads (items.hpp).
  void finish_documents(const json& id, const SignOutcome& o, bool batch, json chain) {
    auto& t = transfers();
    std::size_t budget = t.limits().inline_answer_bytes;
    json common = {{"credentialId", o.credential.id()},
                   {"algorithm", std::string(to_string(o.algorithm))},
                   {"certificate", to_base64(o.credential.cert.der)},
                   {"chain", std::move(chain)}};
    try {
      if (!batch) {
        const auto& r = o.results.front();
        if (!r.ok()) return send_error(id, *r.error);
        json result = output_json(*o.documents.front(), t, budget);
        result.update(common);
        return respond(id, std::move(result));
      }
      json results = json::array();
      std::size_t ok = 0;
      for (std::size_t i = 0; i < o.results.size(); ++i) {
        const auto& r = o.results[i];
        if (r.ok()) {
          ++ok;
          json e = output_json(*o.documents[i], t, budget);
          e["index"] = i;
          e["ok"] = true;
          results.push_back(std::move(e));
        } else {
          results.push_back({{"index", i}, {"ok", false}, {"error", error_json(*r.error)}});
        }
      }
      common.update(json{{"total", o.results.size()},
                         {"signed", ok},
                         {"failed", o.results.size() - ok},
                         {"cancelled", o.cancelled},
                         {"results", std::move(results)}});
      respond(id, std::move(common));
    } catch (const Error& e) {
      send_error(id, e);
    }
  }

  Transfers& transfers() {
    if (!transfers_) transfers_ = std::make_unique<Transfers>(state_dir_);
    return *transfers_;
  }

  // ---- job flags (cancel on close / stop) ----------------------------------------------------

  std::shared_ptr<std::atomic<bool>> new_job_flag() {
    auto f = std::make_shared<std::atomic<bool>>(false);
    add_job_flag(f);
    return f;
  }
  void add_job_flag(const std::shared_ptr<std::atomic<bool>>& f) {
    const std::lock_guard lock(flags_mutex_);
    job_flags_.push_back(f);
    if (closed_flag_->load()) f->store(true);
  }
  void drop_job_flag(const std::shared_ptr<std::atomic<bool>>& f) {
    const std::lock_guard lock(flags_mutex_);
    std::erase(job_flags_, f);
  }
  void cancel_jobs() {
    const std::lock_guard lock(flags_mutex_);
    closed_flag_->store(true);
    for (const auto& f : job_flags_) f->store(true);
  }

  websocket::stream<NextLayer> ws_;
  net::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_{};
  std::shared_ptr<Server::Impl> server_;
  const firmware_config::AgentLimits limits_;
  const std::filesystem::path state_dir_;
  std::unique_ptr<Transfers> transfers_;  // uploads and downloads, made on first use
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::string origin_;
  Language lang_ = Language::Vi;
  bool counted_ = false;
  bool accepted_ = false;
  bool reading_ = false;
  bool closed_ = false;
  std::size_t in_flight_ = 0;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::map<std::string, std::shared_ptr<Batch>> batches_;
  std::shared_ptr<std::atomic<std::size_t>> queued_events_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::shared_ptr<std::atomic<bool>> closed_flag_ = std::make_shared<std::atomic<bool>>(false);
  std::mutex flags_mutex_;
  std::vector<std::shared_ptr<std::atomic<bool>>> job_flags_;
  std::mutex outbox_mutex_;  // messages from job threads, before they reach queue_
  std::vector<std::string> outbox_;
  bool outbox_posted_ = false;
};

}  // namespace

// ---- Server::Impl ------------------------------------------------------------------------------

bool Server::Impl::host_ok(std::string_view host) const {
  const std::string h = ascii_lower(host);
  const std::string p = ":" + std::to_string(port);
  return h == "127.0.0.1" + p || h == "localhost" + p || h == "[::1]" + p;
}

std::string Server::Impl::status_json() const {
  return json{{"name", "kyso-agent"},
              {"version", std::string(kAgentVersion)},
              {"protocols", {kProtocolVersion}},
              {"tls", ssl.has_value()}}
      .dump();
}

void Server::Impl::bind() {
  const auto& cfg = service->config();
  // Started by kyso-agent.socket: systemd already listens for us (checked to be loopback).
  std::uint16_t activated_port = 0;
  if (const auto fds = detail::activated_sockets(activated_port); !fds.empty()) {
    for (const auto& s : fds) {
      auto a = std::make_unique<tcp::acceptor>(ioc);
      a->assign(s.v6 ? tcp::v6() : tcp::v4(), s.fd);
      acceptors.push_back(std::move(a));
    }
    port = activated_port;
    if (cfg.port != 0 && cfg.port != port) {
      spdlog::info("socket activation: listening on systemd's port {} instead of {}", port,
                   cfg.port);
    }
    return;
  }
  std::vector<std::uint16_t> ports;
  if (cfg.port == 0) {
    ports.push_back(0);
  } else {
    for (std::uint16_t i = 0; i <= firmware_config::kAgentPortFallbacks; ++i) {
      ports.push_back(static_cast<std::uint16_t>(cfg.port + i));
    }
  }
  for (auto p : ports) {
    beast::error_code ec;
    auto v4 = std::make_unique<tcp::acceptor>(ioc);
    const tcp::endpoint ep4(net::ip::address_v4::loopback(), p);
    v4->open(ep4.protocol(), ec);
    if (!ec) v4->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) v4->bind(ep4, ec);
    if (!ec) v4->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::info("port {} unavailable ({}), trying the next", p, ec.message());
      continue;
    }
    port = v4->local_endpoint().port();
    acceptors.push_back(std::move(v4));
    // [::1] on the same port; a machine without IPv6 keeps IPv4 only.
    auto v6 = std::make_unique<tcp::acceptor>(ioc);
    const tcp::endpoint ep6(net::ip::address_v6::loopback(), port);
    v6->open(ep6.protocol(), ec);
    if (!ec) v6->set_option(net::ip::v6_only(true), ec);
    if (!ec) v6->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) v6->bind(ep6, ec);
    if (!ec) v6->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      spdlog::info("[::1]:{} not available ({}); IPv4 only", port, ec.message());
    } else {
      acceptors.push_back(std::move(v6));
    }
    return;
  }
  throw Error(ErrorCode::ConfigInvalid,
              "cannot listen on 127.0.0.1 port " + std::to_string(cfg.port) + " nor its fallbacks");
}

void Server::Impl::do_accept(tcp::acceptor& a) {
  a.async_accept(net::make_strand(ioc),
                 [self = shared_from_this(), &a](beast::error_code ec, tcp::socket s) {
                   self->on_accept(a, ec, std::move(s));
                 });
}

void Server::Impl::on_accept(tcp::acceptor& a, beast::error_code ec, tcp::socket socket) {
  if (stopped.load()) return;
  if (!ec) {
    beast::error_code e1;
    beast::error_code e2;
    const auto local = socket.local_endpoint(e1);
    const auto remote = socket.remote_endpoint(e2);
    const auto uid = (e1 || e2) ? std::nullopt : peer_uid(local, remote);
    if (!uid || *uid != ::getuid()) {
      // Another OS user on a shared machine (or a peer we cannot identify): not ours to serve.
      spdlog::warn("refused a connection from {} (uid {})", remote.port(),
                   uid ? std::to_string(*uid) : "unknown");
      service->audit_refusal({}, {}, ErrorCode::OriginForbidden,
                             "peer uid " + (uid ? std::to_string(*uid) : "unknown"));
      socket.close(e1);
    } else {
      // Events and answers go out as soon as they are ready: with Nagle's algorithm the tail of
      // a large answer (a batch's summary) waits for the page's delayed ACK, up to 40 ms.
      socket.set_option(tcp::no_delay(true), e1);
      if (ssl) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(shared_from_this(),
                                                                        std::move(socket), *ssl)
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(shared_from_this(), std::move(socket))->run();
      }
    }
  }
  if (a.is_open()) do_accept(a);
}

void Server::Impl::add_session(const std::shared_ptr<SessionBase>& s) {
  const std::lock_guard lock(sessions_mutex);
  std::erase_if(sessions, [](const std::weak_ptr<SessionBase>& w) { return w.expired(); });
  sessions.push_back(s);
}

void Server::Impl::broadcast(const json& event) {
  auto text = std::make_shared<const std::string>(event.dump());
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    const std::lock_guard lock(sessions_mutex);
    for (const auto& w : sessions) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->post_event(text);
}

void Server::Impl::queue_refresh() {
  if (stopped.load() || refresh_queued.exchange(true)) return;
  net::post(workers, [self = shared_from_this()] {
    self->refresh_queued = false;
    self->refresh_tokens();
  });
}

void Server::Impl::schedule_refresh() {
  refresh_timer.expires_after(kRefreshPeriod);
  refresh_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->stopped.load()) return;
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
  std::vector<json> events;
  {
    const std::lock_guard lock(tokens_mutex);
    if (known_tokens) {
      for (const auto& [k, v] : now) {
        if (!known_tokens->contains(k)) {
          events.push_back({{"event", "token.inserted"}, {"params", {{"token", v}}}});
        }
      }
      for (const auto& [k, v] : *known_tokens) {
        if (!now.contains(k)) {
          events.push_back({{"event", "token.removed"}, {"params", {{"token", v}}}});
        }
      }
    }
    known_tokens = std::move(now);
  }
  for (const auto& e : events) broadcast(e);
}

// ---- Server ------------------------------------------------------------------------------------

Server::Server(std::shared_ptr<Service> service)
    : impl_(std::make_shared<Impl>(std::move(service))) {
  const auto& cfg = impl_->service->config();
  if (cfg.tls) {
    impl_->ssl.emplace(net::ssl::context::tls_server);
    impl_->ssl->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                            net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                            net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    impl_->ssl->use_certificate_chain_file(cfg.tls_cert_file, ec);
    if (!ec) impl_->ssl->use_private_key_file(cfg.tls_key_file, net::ssl::context::pem, ec);
    if (ec) {
      throw Error(ErrorCode::ConfigInvalid, "TLS certificate/key (" + cfg.tls_cert_file + ", " +
                                                cfg.tls_key_file + "): " + ec.message());
    }
  }
  impl_->bind();
  const auto& dir = cfg.state_dir.empty() ? default_state_dir() : cfg.state_dir;
  Transfers::remove_stale(dir);  // files of connections a crashed agent left behind
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const noexcept {
  return impl_->port;
}

std::size_t Server::connections() const noexcept {
  return impl_->connections.load();
}

void Server::start() {
  auto& i = *impl_;
  for (auto& a : i.acceptors) i.do_accept(*a);
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
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    const std::lock_guard lock(i.sessions_mutex);
    for (const auto& w : i.sessions) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->shutdown();
  net::post(i.ioc, [&i] {
    beast::error_code ec;
    for (auto& a : i.acceptors) a->close(ec);
    i.refresh_timer.cancel();
  });
  i.workers.join();  // dialogs and batches see their cancel flags and end
  i.ioc.stop();
  for (auto& t : i.threads) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
  i.threads.clear();
}

}  // namespace kyso::agent
