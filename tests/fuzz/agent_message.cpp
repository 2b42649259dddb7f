// The agent's protocol layer as a page drives it: each line of the input is one WebSocket text
// message, handed to protocol v1's dispatcher (the same Protocol/Connection the listener uses,
// with a Channel that records what is sent instead of a socket) of an agent with no token. The
// lines go once through a connection of an allow-listed origin and once through one of an
// unpaired origin. "$U" and "$D" in a line stand for the last uploadId and downloadId the agent
// answered on that connection, so the upload/download chunk state machine is reachable.
//
// Checked besides the sanitizers: every message the agent sends is JSON, and an unpaired origin
// gets nothing but errors and pairing answers for what it asks.

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "fuzz_support.hpp"
#include "kyso/agent/service.hpp"
#include "protocol/connection.hpp"

namespace {

namespace net = boost::asio;
using json = nlohmann::json;

constexpr const char* kSchool = "https://hocba.example.edu.vn";
constexpr const char* kStranger = "https://stranger.example.com";

class Recorder final : public kyso::agent::transport::Channel {
 public:
  void send(std::string text) override {
    const std::lock_guard lock(mutex_);
    sent_.push_back(std::move(text));
  }
  void close(std::uint16_t) override {}
  std::vector<std::string> take() {
    const std::lock_guard lock(mutex_);
    return std::exchange(sent_, {});
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> sent_;
};

struct Agent {
  Agent() {
    kyso::firmware_config::AgentConfig cfg;
    cfg.system_modules = false;
    cfg.state_dir = kyso::fuzz::scratch() / "agent";
    cfg.allowed_origins = {kSchool};
    cfg.pinentry = "/bin/false";  // any dialog fails at once: the user never approves
    service = std::make_shared<kyso::agent::Service>(cfg);
    protocol =
        std::make_shared<kyso::agent::protocol::Protocol>(service, workers.get_executor(), false);
  }
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> guard = net::make_work_guard(ioc);
  net::thread_pool workers{2};
  std::shared_ptr<kyso::agent::Service> service;
  std::shared_ptr<kyso::agent::protocol::Protocol> protocol;
};

Agent& agent() {
  static Agent* a = new Agent();  // never destroyed: libFuzzer exits without unwinding
  return *a;
}

void replace_all(std::string& s, std::string_view from, const std::string& to) {
  if (to.empty()) return;
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

/// Runs the connection's executor until nothing is in flight, or until nothing happened for
/// 200 ms while something is (a batch announced with `total` waits for the page's batch.items:
/// the page's turn). Bounded: a request that keeps working for 20 s is reported as a crash.
void settle(Agent& a, kyso::agent::transport::Handler& h) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  auto last_work = Clock::now();
  for (;;) {
    if (a.ioc.poll() > 0) last_work = Clock::now();
    if (!h.busy()) {
      a.ioc.poll();
      return;
    }
    if (Clock::now() - last_work > std::chrono::milliseconds(200)) return;
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "agent_message: a request stayed in flight for 20 s\n");
      std::abort();
    }
    if (a.ioc.run_for(std::chrono::milliseconds(1)) > 0) last_work = Clock::now();
  }
}

void check_answer(const std::string& text, bool trusted, std::string& upload,
                  std::string& download) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::fprintf(stderr, "agent_message: the agent sent something that is not a JSON object: %s\n",
                 text.substr(0, 200).c_str());
    std::abort();
  }
  if (const auto r = j.find("result"); r != j.end() && r->is_object()) {
    if (!trusted && !r->contains("protocol") && !r->contains("paired")) {
      std::fprintf(stderr, "agent_message: an unpaired origin got a result: %s\n",
                   text.substr(0, 200).c_str());
      std::abort();
    }
    if (const auto u = r->find("uploadId"); u != r->end() && u->is_string()) upload = *u;
    if (const auto d = r->find("downloadId"); d != r->end() && d->is_string()) download = *d;
  }
}

void run(Agent& a, const char* origin, bool trusted, std::string_view input) {
  auto channel = std::make_shared<Recorder>();
  auto handler = a.protocol->open(origin, channel, net::make_strand(a.ioc));
  std::string upload;
  std::string download;
  while (!input.empty()) {
    const auto nl = input.find('\n');
    std::string line(input.substr(0, nl));
    input = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
    replace_all(line, "$U", upload);
    replace_all(line, "$D", download);
    net::dispatch(a.ioc, [&handler, line = std::move(line)]() mutable {
      handler->on_message(std::move(line), true);
    });
    settle(a, *handler);
    for (const auto& t : channel->take()) check_answer(t, trusted, upload, download);
  }
  handler->on_close();
  settle(a, *handler);
  channel->take();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Agent& a = agent();
  const std::string_view input = kyso::fuzz::as_text(data, size);
  run(a, kSchool, true, input);
  run(a, kStranger, false, input);
  return 0;
}
