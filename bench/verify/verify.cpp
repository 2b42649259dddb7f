// bench/verify: the demo transcript signed by teacher, principal and seal (as PAdES and as
// enveloped XML-DSig) validated
//   - in this process by formats' verification, as `kyso verify` does (the baseline), one
//     thread and two;
//   - through kyso-verifyd over HTTP on loopback with 1 and 2 workers (max_concurrent), as many
//     keep-alive clients as workers;
//   - at 20 concurrent clients (20 validation slots), the p50/p99 latency.
// Same files, same trust settings (the demo root, the issuing CA's CRL as a file, no network),
// interleaved rounds, the best of each kept. Prints validations/s and the ratios.
//
//   kyso-bench-verify --dir TOKEN_DIR [--n 200] [--rounds 3] [--clients 20]
// TOKEN_DIR is made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one).

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include "kyso/core/secret.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/verify.hpp"
#include "kyso/formats/xml.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/verifyd/service.hpp"
#include "pdf_writer.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "123456";

kyso::Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::shared_ptr<kyso::Signer> signer(kyso::pkcs11::Library& lib, const std::string& dir,
                                     const std::string& name) {
  auto s = lib.signer(kyso::to_hex(kyso::sha256(read_file(dir + "/certs/" + name + ".der"))));
  kyso::Secret pin;
  pin.assign(kPin);
  s->authorize(kyso::UserAuth{&pin, nullptr}, {});
  return s;
}

const char* kXml =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HocBa Id=\"hb-1\"><DuLieuHocBa Id=\"hb-1-dl\">"
    "<Truong>Trường THPT Chu Văn An</Truong><HocSinh><HoTen>Nguyễn Văn An</HoTen></HocSinh>"
    "<NamHoc>2025-2026</NamHoc><KetQuaHocTap><Mon Ten=\"Toán\" DiemTBCN=\"8.5\"/>"
    "<Mon Ten=\"Ngữ văn\" DiemTBCN=\"7.0\"/></KetQuaHocTap><RenLuyen>Tốt</RenLuyen>"
    "<KetQuaCaNam>Lên lớp</KetQuaCaNam></DuLieuHocBa></HocBa>\n";

// The demo transcript, signed teacher -> principal -> seal, as PDF and XML under `work`.
std::pair<std::string, std::string> make_documents(const std::string& dir,
                                                   const std::string& work) {
  kyso::pkcs11::Library lib({.paths = {kModule}, .use_p11kit = false, .use_known = false});
  const std::vector<std::string> names = {"teacher", "principal", "seal"};
  kyso::test::PdfPage page;
  page.title = "Học bạ số - Nguyễn Văn An";
  page.lines = {"Trường THPT Chu Văn An", "Năm học 2025-2026, lớp 10A1", "Toán: 8.5  Ngữ văn: 7.0",
                "Rèn luyện: Tốt   Kết quả cả năm: Lên lớp"};
  std::string pdf = work + "/in.pdf";
  {
    std::ofstream out(pdf, std::ios::binary);
    kyso::test::write_pdf(out, page);
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string next = work + "/hocba-" + std::to_string(i + 1) + ".pdf";
    kyso::formats::PdfSignOptions o;
    o.algorithm = i == 1 ? kyso::SignAlgorithm::RsaPssSha256 : kyso::SignAlgorithm::RsaPkcs1Sha256;
    kyso::formats::sign_pdf(*signer(lib, dir, names[i]), pdf, next, o);
    pdf = next;
  }
  auto doc = kyso::formats::XmlDocument::parse(
      {reinterpret_cast<const std::uint8_t*>(kXml), std::strlen(kXml)});
  const char* containers[] = {"ChuKyGVCN", "ChuKyHieuTruong", "ConDau"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    kyso::formats::XmlSignOptions o;
    o.reference_id = i < 2 ? "hb-1-dl" : "hb-1";
    if (i > 0) o.parent_id = "hb-1";
    o.container = containers[i];
    doc.sign(*signer(lib, dir, names[i]), o);
  }
  const std::string xml = work + "/hocba.xml";
  doc.save(xml);
  return {pdf, xml};
}

kyso::firmware_config::VerifydConfig profile(const std::string& dir, const std::string& work,
                                             std::size_t workers) {
  kyso::firmware_config::VerifydConfig c;
  c.port = 0;
  c.anchors = {dir + "/pki/root.crt"};
  c.crl_files = {dir + "/pki/sub.crl"};
  c.work_dir = work;
  c.limits.max_concurrent = workers;
  c.limits.max_connections = 1024;
  return c;
}

// validations/s of `threads` threads each running `fn` n/threads times.
template <class Fn>
double rate(int n, unsigned threads, Fn fn) {
  const auto start = Clock::now();
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = static_cast<int>(t); i < n; i += static_cast<int>(threads)) fn();
    });
  }
  for (auto& t : ts) t.join();
  return n / std::chrono::duration<double>(Clock::now() - start).count();
}

// One keep-alive client of the service.
class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  unsigned validate(const std::string& body) {
    http::request<http::string_body> req{http::verb::post, "/v1/validate", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/octet-stream");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return res.result_int();
  }

 private:
  boost::asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

double service_rate(std::uint16_t port, const std::string& body, int n, unsigned clients,
                    int* failures) {
  std::vector<std::unique_ptr<Client>> cs;
  for (unsigned c = 0; c < clients; ++c) cs.push_back(std::make_unique<Client>(port));
  std::atomic<int> bad{0};
  std::atomic<unsigned> next{0};
  thread_local unsigned mine = 0;
  const double r = rate(n, clients, [&] {
    if (mine == 0) mine = ++next;
    if (cs[mine - 1]->validate(body) != 200) ++bad;
  });
  *failures += bad;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int n = 200;
  int rounds = 3;
  unsigned clients = 20;
  CLI::App app{"kyso-bench-verify: kyso-verifyd's validations per second and p99 latency"};
  app.add_option("--dir", dir, "a token made by tests/pki/make-demo-token.sh")->required();
  app.add_option("--n", n, "validations per run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", rounds, "rounds")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--clients", clients, "concurrent clients for the latency run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // The service logs one line per validation; the figures are what this prints.
  spdlog::set_level(spdlog::level::warn);
  try {
    const std::string work =
        std::filesystem::temp_directory_path() / ("kyso-bench-verify-" + std::to_string(getpid()));
    std::filesystem::create_directories(work);
    const auto [pdf, xml] = make_documents(dir, work);
    kyso::formats::VerifyOptions o;
    o.anchors = {dir + "/pki/root.crt"};
    o.crl_files = {dir + "/pki/sub.crl"};
    o.fetch_hosts = {"-"};
    std::string loadavg;
    std::getline(std::ifstream("/proc/loadavg"), loadavg);
    std::printf(
        "kyso-verifyd vs in-process verification (demo transcript, 3 signatures; %d per run, best "
        "of %d)\n",
        n, rounds);
    std::printf("load average: %s (indicative only on a loaded machine)\n", loadavg.c_str());
    for (const auto& [name, path] : {std::pair{"PDF", pdf}, std::pair{"XML", xml}}) {
      const kyso::Bytes bytes = read_file(path);
      const std::string body(bytes.begin(), bytes.end());
      if (!kyso::formats::verify_file(path, o).ok())
        throw std::runtime_error(std::string(name) + " does not verify");
      double base1 = 0, base2 = 0, svc1 = 0, svc2 = 0;
      int failures = 0;
      kyso::verifyd::Server one(profile(dir, work, 1));
      kyso::verifyd::Server two(profile(dir, work, 2));
      one.start();
      two.start();
      for (int r = 0; r < rounds; ++r) {
        base1 = std::max(base1, rate(n, 1, [&] { (void)kyso::formats::verify_file(path, o); }));
        svc1 = std::max(svc1, service_rate(one.port(), body, n, 1, &failures));
        base2 = std::max(base2, rate(n, 2, [&] { (void)kyso::formats::verify_file(path, o); }));
        svc2 = std::max(svc2, service_rate(two.port(), body, n, 2, &failures));
      }
      one.stop();
      two.stop();
      std::printf(
          "%s  in-process: %7.1f/s (1 thread) %7.1f/s (2)   kyso-verifyd: %7.1f/s (1 worker) "
          "%7.1f/s (2)   ratio %.2f / %.2f%s\n",
          name, base1, base2, svc1, svc2, svc1 / base1, svc2 / base2,
          failures > 0 ? "   (some requests failed!)" : "");
      // Latency at `clients` concurrent clients, each sending n/clients requests.
      kyso::verifyd::Server many(profile(dir, work, clients));
      many.start();
      std::vector<double> ms;
      std::mutex m;
      std::vector<std::thread> ts;
      int errors = 0;
      for (unsigned c = 0; c < clients; ++c) {
        ts.emplace_back([&] {
          Client cl(many.port());
          for (int i = 0; i < std::max(1, n / static_cast<int>(clients)); ++i) {
            const auto t0 = Clock::now();
            const unsigned st = cl.validate(body);
            const double d = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            const std::lock_guard lock(m);
            ms.push_back(d);
            if (st != 200) ++errors;
          }
        });
      }
      for (auto& t : ts) t.join();
      many.stop();
      std::sort(ms.begin(), ms.end());
      std::printf(
          "%s  %u concurrent clients: p50 %.1f ms, p99 %.1f ms (%zu requests, %d not 200)\n", name,
          clients, ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)], ms.size(),
          errors);
    }
    std::filesystem::remove_all(work);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kyso-bench-verify: %s\n", e.what());
    return 1;
  }
}
