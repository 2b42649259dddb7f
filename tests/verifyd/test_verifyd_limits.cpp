// kyso-verifyd refuses what it must with a clear error and keeps serving: a non-document, a
// 1 GB upload (refused while it streams, never buffered), a PDF bomb, an XML bomb, a deeply
// nested CMS; a full house gets 503 at once and an overlong validation 503 at its time limit.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "kyso/firmware_config/config_error.hpp"
#include "verifyd_support.hpp"

using namespace kyso::test;
using nlohmann::json;

namespace {

// Peak resident memory of this process (the service runs in it), in MB.
long peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  }
  return -1;
}

// The service still answers: its health and a real validation.
void still_serving(RunningVerifyd& vd, const std::string& good_doc) {
  CHECK(get(vd.url("/health")).status == 200);
  const auto a = post_file(vd.url("/v1/validate"), good_doc);
  CHECK(a.status == 200);
  CHECK(a.body.find("\"TOTAL-PASSED\"") != std::string::npos);
}

void expect_error(const Answer& a, int status, const std::string& code) {
  INFO(a.body);
  CHECK(a.status == status);
  if (a.status == status) {
    const json e = a.json()["error"];
    CHECK(e["code"] == code);
    CHECK_FALSE(e["vi"].get<std::string>().empty());
    CHECK_FALSE(e["en"].get<std::string>().empty());
  }
}

// A TCP listener that never accepts: connections complete in the backlog and then hang, as an
// OCSP responder that stopped answering does.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 64);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  SilentServer(SilentServer&&) = delete;
  SilentServer& operator=(SilentServer&&) = delete;
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/";
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("verifyd: bad input ends with a clear error and the service keeps serving",
          "[verifyd][security]") {
  ScratchDir dir;
  RunningVerifyd vd(demo_profile("", dir.path().string()));
  const auto good = signed_transcript_xml(dir);

  SECTION("not a document") {
    write_text(dir.file("x.bin"), "xin chào, đây không phải học bạ");
    expect_error(post_file(vd.url("/v1/validate"), dir.file("x.bin")), 422, "DOCUMENT_INVALID");
    write_text(dir.file("empty"), "");
    expect_error(post_file(vd.url("/v1/validate"), dir.file("empty")), 400, "BAD_REQUEST");
    expect_error(get(vd.url("/v1/validate")), 405, "BAD_REQUEST");
    expect_error(get(vd.url("/nowhere")), 404, "BAD_REQUEST");
    still_serving(vd, good);
  }

  SECTION("a 1 GB upload is refused while it streams, never held in memory") {
    const long before = peak_rss_mb();
    // Chunked, from a pipe: curl never holds it either; the server refuses past its limit.
    const auto a =
        curl("-X POST -T - -H 'Content-Type: application/pdf' '" + vd.url("/v1/validate") + "'",
             "head -c 1073741824 /dev/zero");
    INFO(a.body);
    CHECK(a.status == 413);
    // Announced up front: refused at the header, before any body byte is read.
    const auto [rc, out] =
        run("python3 -c 'import socket,sys; s=socket.create_connection((\"127.0.0.1\", "
            "int(sys.argv[1])));"
            "s.sendall(b\"POST /v1/validate HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: "
            "1073741824\\r\\n\\r\\n\");"
            "print(s.recv(4096).decode().split(\"\\r\\n\")[0])' " +
            std::to_string(vd.server().port()));
    CHECK(out.find("413") != std::string::npos);
    CHECK(peak_rss_mb() - before < 200);
    still_serving(vd, good);
  }

  SECTION("a PDF bomb: a flate stream of 1 GB of zeros in a later revision") {
    const auto pdf = signed_transcript_pdf(dir);
    REQUIRE(run("head -c 1073741824 /dev/zero | python3 -c 'import sys,zlib; "
                "c=zlib.compressobj(9); [sys.stdout.buffer.write(c.compress(b)) for b in "
                "iter(lambda: sys.stdin.buffer.read(1<<20), b\"\")]; "
                "sys.stdout.buffer.write(c.flush())' > " +
                dir.file("bomb.z"))
                .first == 0);
    const auto z = read_bytes(dir.file("bomb.z"));
    append_pdf_revision(
        pdf, {{4, "<< /Length " + std::to_string(z.size()) + " /Filter /FlateDecode >>\nstream\n" +
                      std::string(z.begin(), z.end()) + "\nendstream"}});
    const long before = peak_rss_mb();
    const auto a = post_file(vd.url("/v1/validate"), pdf);
    INFO(a.body.substr(0, 400));
    REQUIRE(a.status == 200);  // judged from the raw bytes: nothing is inflated
    CHECK(a.json()["subIndication"] == "FORMAT_FAILURE");
    CHECK(peak_rss_mb() - before < 200);
    // Deeply nested arrays where the form's fields are looked for, in a well-formed file.
    std::string nested = "%PDF-1.7\n";
    const std::size_t obj1 = nested.size();
    nested += "1 0 obj\n<< /Type /Catalog /AcroForm << /Fields 2 0 R >> >>\nendobj\n";
    const std::size_t obj2 = nested.size();
    nested += "2 0 obj\n" + std::string(200000, '[') + std::string(200000, ']') + "\nendobj\n";
    const std::size_t xref = nested.size();
    auto entry = [](std::size_t off) {
      const std::string o = std::to_string(off);
      return std::string(10 - o.size(), '0') + o + " 00000 n \n";
    };
    nested += "xref\n0 3\n0000000000 65535 f \n" + entry(obj1) + entry(obj2) +
              "trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) +
              "\n%%EOF\n";
    write_text(dir.file("nested.pdf"), nested);
    const auto n = post_file(vd.url("/v1/validate"), dir.file("nested.pdf"));
    INFO(n.body);
    CHECK((n.status == 422 ||
           (n.status == 200 && n.json()["subIndication"] == "SIGNED_DATA_NOT_FOUND")));
    still_serving(vd, good);
  }

  SECTION("an XML bomb: entities expanding to gigabytes, and an external entity") {
    std::string bomb =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lollollollollol\">\n";
    for (int i = 1; i <= 9; ++i) {
      bomb += "<!ENTITY lol" + std::to_string(i) + " \"";
      for (int k = 0; k < 10; ++k)
        bomb += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
      bomb += "\">\n";
    }
    bomb += "]>\n<HocBa Id=\"hb\">&lol9;</HocBa>\n";
    write_text(dir.file("bomb.xml"), bomb);
    const auto t0 = std::chrono::steady_clock::now();
    auto a = post_file(vd.url("/v1/validate"), dir.file("bomb.xml"));
    INFO(a.body);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
    // No signature in it: either refused or judged unsigned, never expanded.
    CHECK((a.status == 422 ||
           (a.status == 200 && a.json()["subIndication"] == "SIGNED_DATA_NOT_FOUND")));
    write_text(dir.file("xxe.xml"),
               "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n"
               "<HocBa Id=\"hb\">&e;</HocBa>\n");
    a = post_file(vd.url("/v1/validate"), dir.file("xxe.xml"));
    CHECK(a.body.find("root:") == std::string::npos);
    still_serving(vd, good);
  }

  SECTION("a deeply nested CMS") {
    // 100 000 nested SEQUENCEs of indefinite length: OpenSSL's decoder stops at its depth limit.
    std::string der;
    for (int i = 0; i < 100000; ++i) der += "\x30\x80";
    for (int i = 0; i < 100000; ++i) der += std::string("\x00\x00", 2);
    write_text(dir.file("nested.p7s"), der);
    expect_error(post_file(vd.url("/v1/validate"), dir.file("nested.p7s")), 422,
                 "DOCUMENT_INVALID");
    still_serving(vd, good);
  }
}

TEST_CASE("verifyd: a full service answers 503 at once, an overlong validation 503 at its limit",
          "[verifyd][limits]") {
  ScratchDir dir;
  SilentServer silent;
  auto profile = demo_profile(silent.url(), dir.path().string());
  profile.crl_files.clear();  // revocation only from the silent OCSP responder
  profile.fetch_timeout = std::chrono::seconds(4);
  profile.limits.max_concurrent = 1;
  profile.limits.validation_timeout = std::chrono::seconds(1);
  RunningVerifyd vd(profile);
  const auto doc = signed_transcript_xml(dir);
  // The first validation waits for OCSP longer than its time limit: 503 TIMEOUT at the limit,
  // while it goes on in the background holding the only slot...
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(post_file(vd.url("/v1/validate"), doc), 503, "TIMEOUT");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
  // ...so the next one is refused at once: 503 BUSY.
  expect_error(post_file(vd.url("/v1/validate"), doc), 503, "BUSY");
  // The page is still served while the slot is held by the overrunning validation.
  CHECK(get(vd.url("/")).status == 200);
}

TEST_CASE("verifyd: profile mistakes are reported with file, line and key", "[verifyd][config]") {
  ScratchDir dir;
  auto load = [&](const std::string& toml) -> std::string {
    write_text(dir.file("kyso-verifyd.toml"), toml);
    try {
      kyso::firmware_config::load_verifyd_config(dir.file("kyso-verifyd.toml"));
      return "";
    } catch (const kyso::firmware_config::ConfigError& e) {
      return e.located(kyso::Language::En);
    }
  };
  const std::string root = pki_path("root");
  const std::string trust =
      "[trust]\nanchors = [\"" + root + "\"]\nocsp_url = \"http://127.0.0.1:1/\"\n";
  CHECK(load("[server]\nlisten = \"127.0.0.1:0\"\n" + trust).empty());
  CHECK(load("[server]\nlisten = \"localhost:80\"\n" + trust).find(":2:") != std::string::npos);
  CHECK(load("[server]\nlisten = \"0.0.0.0:8444\"\n" + trust).find("tls") != std::string::npos);
  const auto no_anchor = load("[server]\nlisten = \"127.0.0.1:0\"\n[trust]\nanchors = []\n");
  CHECK(no_anchor.find(":4:") != std::string::npos);
  CHECK(no_anchor.find("trust.anchors") != std::string::npos);
  const auto typo =
      load("[server]\nlisten = \"127.0.0.1:0\"\n" + trust + "[limits]\nmax_concurent = 3\n");
  CHECK(typo.find("limits.max_concurent") != std::string::npos);
  const auto fetch =
      load("[server]\nlisten = \"127.0.0.1:0\"\n[trust]\nanchors = [\"" + root + "\"]\n");
  CHECK(fetch.find("trust.fetch_hosts") != std::string::npos);
}

TEST_CASE("verifyd: the example profile loads as installed", "[verifyd][config]") {
  ScratchDir dir;
  const std::filesystem::path d = dir.path();
  // The example's relative files, as an installation would have them.
  std::filesystem::create_directories(d / "tls");
  std::filesystem::create_directories(d / "trust");
  std::filesystem::create_directories(d / "seal");
  write_text(dir.file("tls/verifyd.crt"), "x");
  write_text(dir.file("tls/verifyd.key"), "x");
  write_text(dir.file("seal/pin"), "123456\n");
  std::filesystem::permissions(d / "tls/verifyd.key", std::filesystem::perms::owner_read |
                                                          std::filesystem::perms::owner_write);
  std::filesystem::permissions(
      d / "seal/pin", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  for (const char* f : {"trust/neac-root.pem", "trust/vgca-root.pem", "trust/intermediates.pem"})
    std::filesystem::copy_file(pki_path("root"), d / f);
  const auto& seal = fixture().credential("seal");
  write_bytes(dir.file("seal/seal.crt"), seal.cert_der);  // DER: the profile takes PEM or DER
  std::filesystem::copy_file(
      std::string(KYSO_SOURCE_DIR) + "/formats/verifyd/examples/kyso-verifyd.toml",
      d / "kyso-verifyd.toml");
  const auto c = kyso::firmware_config::load_verifyd_config(d / "kyso-verifyd.toml");
  CHECK(c.name == "Sở GD&ĐT Hà Nội - tra cứu học bạ số");
  CHECK(c.listen_address == "0.0.0.0");
  CHECK(c.port == 8444);
  CHECK(c.anchors.size() == 2);
  CHECK(c.fetch_hosts == std::vector<std::string>{"ocsp.ca.gov.vn", "crl.ca.gov.vn"});
  CHECK(c.limits.max_document_bytes == 20UL * 1024 * 1024);
  REQUIRE(c.seal.has_value());
  CHECK(c.seal->credential_id == seal.credential_id());
  CHECK(c.seal->algorithm == "rsa-pss-sha256");
}

TEST_CASE("verifyd: kyso doctor checks the profile and the service on its port",
          "[verifyd][doctor]") {
  ScratchDir dir;
  auto profile = demo_profile("", dir.path().string());
  RunningVerifyd vd(profile);
  const std::string toml = "[server]\nlisten = \"127.0.0.1:" + std::to_string(vd.server().port()) +
                           "\"\n[trust]\nanchors = [\"" + pki_path("root") +
                           "\"]\ncrl_files = [\"" + pki_path("crl") + "\"]\n";
  write_text(dir.file("kyso-verifyd.toml"), toml);
  auto doctor = [&](const std::string& file) {
    const auto [rc, out] = run(std::string(std::getenv("KYSO_CLI")) +
                               " --lang en doctor --json --no-config --usb-inventory /dev/null "
                               "--verifyd-config " +
                               file + " 2>/dev/null");
    const json j = json::parse(out);
    for (const auto& c : j["checks"]) {
      if (c["check"] == "verifyd") return c;
    }
    return json();
  };
  json c = doctor(dir.file("kyso-verifyd.toml"));
  INFO(c.dump());
  CHECK(c["status"] == "ok");
  CHECK(c["message"].get<std::string>().find("kyso-verifyd is running at http://127.0.0.1:") == 0);
  write_text(dir.file("bad.toml"), "[server]\nlisten = \"127.0.0.1:1\"\n[trust]\nanchors = []\n");
  c = doctor(dir.file("bad.toml"));
  CHECK(c["status"] == "fail");
  CHECK(c["message"].get<std::string>().find("bad.toml:4:") != std::string::npos);
}
