// Protocol v1 in-process: the dispatcher, its parsers and its answers with no socket and no
// token. A Channel that keeps what is sent stands in for the WebSocket; the agent's service runs
// on an empty module list and a fresh state directory.

#include <unistd.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <random>

#include "kyso/agent/service.hpp"
#include "protocol/connection.hpp"
#include "protocol/request.hpp"

using namespace kyso;
using namespace kyso::agent;
using json = nlohmann::json;
namespace net = boost::asio;

namespace {

constexpr const char* kSchool = "https://hocba.example.edu.vn";

class Recorder final : public transport::Channel {
 public:
  void send(std::string text) override {
    const std::lock_guard lock(mutex_);
    sent_.push_back(std::move(text));
  }
  void close(std::uint16_t code) override { closed_ = code; }
  std::vector<std::string> take() {
    const std::lock_guard lock(mutex_);
    return std::exchange(sent_, {});
  }
  std::optional<std::uint16_t> closed_;

 private:
  std::mutex mutex_;
  std::vector<std::string> sent_;
};

/// One connection of `origin` to an agent with no token.
struct Harness {
  explicit Harness(const std::string& origin = kSchool) {
    state = std::filesystem::temp_directory_path() /
            ("kyso-protocol-" + std::to_string(::getpid()) + "-" + std::to_string(++count));
    std::filesystem::remove_all(state);
    firmware_config::AgentConfig cfg;
    cfg.system_modules = false;
    cfg.state_dir = state;
    cfg.allowed_origins = {kSchool};
    cfg.pinentry = "/bin/false";
    service = std::make_shared<Service>(cfg);
    protocol = std::make_shared<protocol::Protocol>(service, workers.get_executor(), false);
    channel = std::make_shared<Recorder>();
    handler = protocol->open(origin, channel, net::make_strand(ioc));
  }
  ~Harness() {
    handler->on_close();
    workers.join();
    std::filesystem::remove_all(state);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  Harness(Harness&&) = delete;
  Harness& operator=(Harness&&) = delete;

  /// Hands `text` to the dispatcher and returns every message sent until the answer to `id`
  /// (the last one).
  std::vector<json> exchange(std::string text, const json& id) {
    net::dispatch(ioc, [this, text = std::move(text)]() mutable {
      handler->on_message(std::move(text), true);
    });
    std::vector<json> got;
    for (int i = 0; i < 500; ++i) {
      if (ioc.stopped()) ioc.restart();
      ioc.run_for(std::chrono::milliseconds(10));
      for (auto& t : channel->take()) {
        got.push_back(json::parse(t));
        if (got.back().contains("event")) continue;
        if (got.back()["id"] == id) return got;
      }
    }
    FAIL("no answer to " << id.dump() << " among " << got.size() << " messages");
    return got;
  }
  /// Hands `text` to the dispatcher without waiting for an answer.
  void post(std::string text) {
    net::dispatch(ioc, [this, text = std::move(text)]() mutable {
      handler->on_message(std::move(text), true);
    });
  }
  json call(const std::string& method, const json& params, const json& id = 1) {
    return exchange(json{{"id", id}, {"method", method}, {"params", params}}.dump(), id).back();
  }

  static inline int count = 0;
  std::filesystem::path state;
  net::io_context ioc;
  // Keeps ioc from stopping between exchanges (it stops when it runs out of work).
  net::executor_work_guard<net::io_context::executor_type> guard = net::make_work_guard(ioc);
  net::thread_pool workers{2};
  std::shared_ptr<Service> service;
  std::shared_ptr<protocol::Protocol> protocol;
  std::shared_ptr<Recorder> channel;
  std::shared_ptr<transport::Handler> handler;
};

std::string code_of(const json& r) {
  return r.at("error").at("code").get<std::string>();
}

json hash_item(const std::string& title) {
  return {{"type", "hash"},
          {"hashAlgorithm", "sha256"},
          {"hash", std::string(64, 'a')},
          {"title", title}};
}

json xml_item() {
  return {{"type", "xml"}, {"text", "<a Id=\"d\"/>"}, {"reference", "d"}, {"title", "XML"}};
}

}  // namespace

TEST_CASE("request_nested400000Deep_badRequestWhileParsingAndTheConnectionStays",
          "[ws][security]") {
  Harness h;
  // Issue 12, finding 1: 800 KB of nested arrays in params killed the agent (stack overflow).
  std::string deep = R"({"id":7,"method":"hello","params":{"x":)";
  deep += std::string(400000, '[') + std::string(400000, ']') + "}}";
  const auto r = h.exchange(deep, 7).back();
  CHECK(code_of(r) == "BAD_REQUEST");
  CHECK(r["error"]["detail"].get<std::string>().find("64") != std::string::npos);
  // Nesting within the limit is an ordinary request.
  std::string ok = R"({"id":8,"method":"hello","params":{"x":)";
  ok += std::string(60, '[') + std::string(60, ']') + "}}";
  CHECK(h.exchange(ok, 8).back().contains("result"));
  // Before the id is read, too deep is answered without one.
  const auto anon = h.exchange(std::string(100, '['), nullptr).back();
  CHECK(code_of(anon) == "BAD_REQUEST");
}

TEST_CASE("parseRequest_depthLimit_enforcedAsContainersOpen", "[ws][security]") {
  json id;
  const std::string at_limit = R"({"id":1,"method":"m","params":{"a":)" +
                               std::string(protocol::kMaxDepth - 2, '[') +
                               std::string(protocol::kMaxDepth - 2, ']') + "}}";
  CHECK_NOTHROW(protocol::parse_request(at_limit, id));
  const std::string over = R"({"id":1,"method":"m","params":{"a":)" +
                           std::string(protocol::kMaxDepth - 1, '[') +
                           std::string(protocol::kMaxDepth - 1, ']') + "}}";
  CHECK_THROWS_AS(protocol::parse_request(over, id), Error);
}

TEST_CASE("batchSign_hashThenDocuments_badRequestForEveryItemOfAnotherKind", "[ws][security]") {
  Harness h;
  // Issue 12, finding 6: a hash first and documents after were accepted and signed as hashes.
  auto r = h.call("batch.sign",
                  {{"role", "teacher"}, {"items", {hash_item("a"), hash_item("b"), xml_item()}}});
  CHECK(code_of(r) == "BAD_REQUEST");
  CHECK(r["error"]["detail"].get<std::string>().find("item 2 is xml") != std::string::npos);
  // A document first, a hash later: refused as well.
  r = h.call("batch.sign", {{"role", "teacher"}, {"items", {xml_item(), hash_item("a")}}}, 2);
  CHECK(code_of(r) == "BAD_REQUEST");
  // Items sent later are held to the batch's kind too, and none of the refused ones is kept.
  h.post(json{{"id", 3},
              {"method", "batch.sign"},
              {"params", {{"role", "teacher"}, {"total", 3}, {"items", {hash_item("a")}}}}}
             .dump());
  r = h.call("batch.items", {{"batchId", 3}, {"items", {hash_item("b"), xml_item()}}}, 4);
  CHECK(code_of(r) == "BAD_REQUEST");
  r = h.call("batch.items", {{"batchId", 3}, {"items", {hash_item("b")}}}, 5);
  CHECK(r["result"]["received"] == 2);
  const auto answers = h.exchange(
      json{{"id", 6}, {"method", "batch.cancel"}, {"params", {{"batchId", 3}}}}.dump(), 6);
  CHECK(answers.back()["result"]["cancelled"] == true);
  REQUIRE(answers.size() == 2);
  CHECK(code_of(answers.front()) == "USER_CANCELLED");
}

TEST_CASE("dispatch_unpairedOrigin_helloOnlyAndRefusalsAnswered", "[ws][security]") {
  Harness h("https://other.example");
  const auto hello = h.call("hello", {{"language", "en"}});
  CHECK(hello["result"]["paired"] == false);
  CHECK(code_of(h.call("sign", {{"role", "teacher"}, {"item", hash_item("x")}}, 2)) ==
        "ORIGIN_NOT_PAIRED");
  CHECK(code_of(h.call("upload.begin", json::object(), 3)) == "ORIGIN_NOT_PAIRED");
  CHECK(code_of(h.call("token.format", json::object(), 4)) == "NOT_SUPPORTED");
}

TEST_CASE("dispatch_malformedRequests_eachAnsweredBadRequest", "[ws][security]") {
  Harness h;
  const auto not_json = h.exchange("{\"id\": 1, \"method\"", nullptr).back();
  CHECK(code_of(not_json) == "BAD_REQUEST");
  CHECK(not_json["error"]["detail"] == "not JSON");  // was "not a JSON object"
  const auto array = h.exchange("[1,2,3]", nullptr).back();
  CHECK(code_of(array) == "BAD_REQUEST");
  CHECK(array["error"]["detail"] == "not a JSON object");
  CHECK(code_of(h.exchange(R"({"id":{"x":1},"method":"hello"})", nullptr).back()) == "BAD_REQUEST");
  CHECK(code_of(h.exchange(R"({"id":2,"method":"hello","params":[]})", 2).back()) == "BAD_REQUEST");
  CHECK(code_of(h.call("sign", {{"role", "dean"}, {"item", hash_item("x")}}, 3)) == "BAD_REQUEST");
  CHECK(code_of(h.call("sign", {{"role", "teacher"}, {"item", {{"type", "docx"}}}}, 4)) ==
        "BAD_REQUEST");
  CHECK(code_of(h.call("batch.items", {{"batchId", 99}, {"items", json::array()}}, 5)) ==
        "BAD_REQUEST");
}

TEST_CASE("dispatch_mutatedRequests_neverCrashAndAlwaysAnswer", "[ws][security]") {
  // A small in-process fuzz: valid requests with bytes flipped, cut or repeated.
  Harness h("https://other.example");
  const std::vector<std::string> seeds = {
      json{{"id", 1}, {"method", "hello"}, {"params", {{"protocols", {1}}}}}.dump(),
      json{{"id", 1},
           {"method", "batch.sign"},
           {"params", {{"role", "seal"}, {"items", {hash_item("a"), xml_item()}}}}}
          .dump(),
      json{{"id", 1}, {"method", "credentials.list"}, {"params", {{"role", "teacher"}}}}.dump()};
  std::mt19937 rng(12);
  for (int n = 0; n < 300; ++n) {
    std::string t = seeds[static_cast<std::size_t>(n) % seeds.size()];
    for (int k = 0; k < 3; ++k) {
      const auto at = std::uniform_int_distribution<std::size_t>(0, t.size() - 1)(rng);
      switch (rng() % 3) {
        case 0:
          t[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          t.resize(at);
          break;
        default:
          t.insert(at, t.substr(at, 8));
          break;
      }
      if (t.empty()) t = "{";
    }
    h.post(t);
  }
  // Everything was answered (one message per request) and the connection still works.
  CHECK(h.call("hello", json::object(), "last")["result"]["paired"] == false);
}

TEST_CASE("parse_item accepts hex and base64 and checks the digest length", "[ws]") {
  using protocol::parse_item;
  const std::string hex(64, 'a');
  CHECK(parse_item({{"type", "hash"}, {"hash", hex}, {"hashAlgorithm", "sha256"}}).digest.size() ==
        32);
  const auto b64 = to_base64(Bytes(48, 7));
  CHECK(parse_item({{"type", "hash"}, {"hash", b64}, {"hashAlgorithm", "sha384"}}).digest.size() ==
        48);
  CHECK_THROWS_MATCHES(
      parse_item({{"type", "hash"}, {"hash", b64}, {"hashAlgorithm", "sha256"}}), Error,
      Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::DigestInvalid; }));
  CHECK_THROWS_MATCHES(
      parse_item({{"type", "pdf"}}), Error,
      Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::BadRequest; }));
  const auto pdf = parse_item({{"type", "pdf"},
                               {"document", to_base64(Bytes(10, '%'))},
                               {"title", "Học bạ"},
                               {"level", "b-t"}});
  CHECK(pdf.type == ItemType::Pdf);
  CHECK(pdf.digest == sha256(Bytes(10, '%')));
  CHECK(pdf.title == "Học bạ");  // the desk puts the document's label before it
  CHECK(dialog_label(*pdf.document) == "[PDF · PAdES B-T · 10 B] ");
  // The long-term levels: b-lt / b-lta, xades-b-lt / xades-b-lta, shown in the dialog.
  CHECK(dialog_label(*parse_item({{"type", "pdf"},
                                  {"document", to_base64(Bytes(10, '%'))},
                                  {"title", "Học bạ"},
                                  {"level", "b-lta"}})
                          .document) == "[PDF · PAdES B-LTA · 10 B] ");
  const auto xml = parse_item({{"type", "xml"},
                               {"text", "<HocBa Id=\"hb\"/>"},
                               {"reference", "hb"},
                               {"profile", "xades-b-lt"},
                               {"title", "Học bạ"}});
  CHECK(xml.document->level == Level::LT);
  CHECK(dialog_label(*xml.document).starts_with("[XML · XAdES B-LT · "));
  CHECK(parse_item({{"type", "cms"}, {"text", "x"}, {"level", "b-lt"}, {"title", "Gói"}})
            .document->level == Level::LT);
  for (const json& bad :
       {json{{"type", "pdf"}, {"document", to_base64(Bytes(10, '%'))}, {"level", "b-ltv"}},
        json{{"type", "xml"}, {"text", "<a Id=\"a\"/>"}, {"reference", "a"}, {"profile", "b-lt"}},
        // A hash-only CMS cannot be extended: the archive needs the content.
        json{{"type", "cms"}, {"hash", hex}, {"hashAlgorithm", "sha256"}, {"level", "b-lt"}}}) {
    CHECK_THROWS_MATCHES(parse_item(bad), Error, Catch::Predicate<Error>([](const Error& e) {
                           return e.code() == ErrorCode::BadRequest;
                         }));
  }
  const auto title =
      parse_item(
          {{"type", "hash"}, {"hash", hex}, {"hashAlgorithm", "sha256"}, {"title", "Học bạ\n- A"}})
          .title;
  CHECK(title == "Học bạ - A");
}

// ---- Issue 12, finding 4 and the schema's maxLength
// ----------------------------------------------

TEST_CASE("parseItem_titleWithSeparatorsBidiAndFormatControls_cleanedForTheDialog",
          "[ws][security]") {
  using protocol::parse_item;
  const auto title = [](const std::string& t) {
    return parse_item({{"type", "hash"},
                       {"hash", std::string(64, 'a')},
                       {"hashAlgorithm", "sha256"},
                       {"title", t}})
        .title;
  };
  // Line and paragraph separators and C1 controls break no line; bidi and format controls
  // (U+202A-202E, U+2066-2069, U+200E/200F, U+061C, zero-width, BOM, soft hyphen) are gone.
  CHECK(title("A\u2028B\u2029C\u0085D\u009BE") == "A B C D E");
  CHECK(title("\u202Eabc\u202C \u202A\u202B\u202D\u2066\u2067\u2068x\u2069") == "abc x");
  CHECK(title("L\u200ER\u200FA\u061CZ\u200B\u200C\u200D\uFEFF\u00AD\u2060!") == "LRAZ!");
  // Vietnamese, its combining marks and other scripts stay as they are.
  CHECK(title("Nguyễn Thị Ánh Tuyết – Học bạ 12A1") == "Nguyễn Thị Ánh Tuyết – Học bạ 12A1");
  CHECK(title("Nguye\u0302\u0303n") == "Nguye\u0302\u0303n");
  CHECK(clean_dialog_text("a\xFF"
                          "b\xC0\x80"
                          "c") == "a\uFFFDb\uFFFD\uFFFDc");
}

TEST_CASE("parseItem_titleOverSchemaMaxLength_refusedNotCut", "[ws]") {
  using protocol::parse_item;
  const auto item = [](const std::string& t) {
    return json{{"type", "hash"},
                {"hash", std::string(64, 'a')},
                {"hashAlgorithm", "sha256"},
                {"title", t}};
  };
  // 200 characters (600 bytes of Vietnamese) are within item.json's maxLength: kept whole.
  std::string at_limit;
  for (int i = 0; i < 200; ++i) at_limit += "ễ";
  CHECK(parse_item(item(at_limit)).title == at_limit);
  CHECK_THROWS_MATCHES(parse_item(item(at_limit + "a")), Error,
                       Catch::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::BadRequest &&
                                e.detail().find("201 characters") != std::string::npos;
                       }));
  Harness h;
  const auto r = h.call("sign", {{"role", "teacher"}, {"item", item(std::string(201, 'x'))}});
  CHECK(code_of(r) == "BAD_REQUEST");
}
