// bench/format-sign: N transcripts signed as enveloped XML-DSig and as PAdES B-B through
// kyso::formats, and in the same run the bare SHA-256 hashes through raw PKCS#11 (C_SignInit +
// C_Sign, one session, and two sessions in two threads for the two-thread case; the shared
// baseline in bench/common/raw_pkcs11.hpp) with the same
// RSA-2048 key on the same SoftHSM2 token. Raw, XML and PDF runs are interleaved for `rounds`
// rounds and the best of each is kept, so a burst of load on the machine hits all of them alike.
// Prints rates and the ratios formats/raw (goals: XML >= 0.80, the school file >= 0.85, PDF >=
// 0.70, PDF file to file >= 0.80 on tmpfs, PDF in 2 threads >= 0.90 of raw on 2 sessions,
// two-phase >= 0.90 of the single call), then the peak RSS
// of a child process signing a 200 MB PDF (goal < 64 MB), then the cost of the long-term levels:
// `--lt` transcripts signed PAdES, XAdES and CAdES B-T, extended to B-LT and to B-LTA (validation
// data from `openssl ocsp`, timestamps from `openssl ts`, both on loopback), per document against
// B-T's own cost, and the bytes each level adds.
//
//   kyso-bench-format-sign --dir TOKEN_DIR [--n 1000] [--rounds 5] [--big-mb 200] [--school 2000]
//                          [--lt 20] [--work DIR]
// DIR holds the PDFs while they are signed (default: a fresh directory under /tmp).
// TOKEN_DIR is made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/raw_pkcs11.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/extend.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/prepare.hpp"
#include "kyso/formats/xml.hpp"
#include "kyso/pkcs11/library.hpp"
#include "pdf_writer.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "123456";
constexpr unsigned char kTeacherKeyId = 0x01;

std::string transcript_xml(int i) {
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HocBa Id=\"hb-" +
                  std::to_string(i) + "\"><DuLieuHocBa Id=\"hb-" + std::to_string(i) +
                  "-dl\"><Truong>Trường THPT Chu Văn An</Truong><HocSinh><HoTen>Nguyễn Văn An " +
                  std::to_string(i) + "</HoTen><SoDinhDanh>0012100" + std::to_string(10000 + i) +
                  "</SoDinhDanh></HocSinh><NamHoc>2025-2026</NamHoc><KetQuaHocTap>";
  for (const char* s : {"Toán", "Ngữ văn", "Tiếng Anh", "Vật lí", "Hóa học", "Sinh học", "Lịch sử",
                        "Địa lí", "Tin học", "Giáo dục kinh tế và pháp luật"}) {
    x += std::string("<Mon Ten=\"") + s + "\" DiemTBCN=\"" + std::to_string(5 + i % 5) + ".5\"/>";
  }
  return x +
         "</KetQuaHocTap><RenLuyen>Tốt</RenLuyen><KetQuaCaNam>Lên "
         "lớp</KetQuaCaNam></DuLieuHocBa></HocBa>\n";
}

kyso::test::PdfPage transcript_page(int i) {
  kyso::test::PdfPage p;
  p.title = "Học bạ số - Nguyễn Văn An " + std::to_string(i);
  p.lines = {"Trường THPT Chu Văn An", "Năm học 2025-2026, lớp 10A1", "Toán: 8.5  Ngữ văn: 7.0",
             "Rèn luyện: Tốt   Kết quả cả năm: Lên lớp"};
  return p;
}

std::string credential_id(const std::string& dir, const std::string& name) {
  std::ifstream in(dir + "/certs/" + name + ".der", std::ios::binary);
  const kyso::Bytes der{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return kyso::to_hex(kyso::sha256(der));
}

std::shared_ptr<kyso::Signer> teacher(kyso::pkcs11::Library& lib, const std::string& dir) {
  auto signer = lib.signer(credential_id(dir, "teacher"));
  kyso::Secret pin;
  pin.assign(kPin);
  signer->authorize({.pin = &pin}, {});
  return signer;
}

// Peak RSS of this process image from /proc (VmHWM): getrusage's ru_maxrss would carry over
// the parent's high-water mark through posix_spawn's shared-memory vfork.
long max_rss_kb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Child mode: sign one (big) PDF and print the peak RSS of this process.
int sign_big(const std::string& dir, const std::string& in, const std::string& out) {
  kyso::pkcs11::Library lib({.paths = {kModule}, .use_p11kit = false, .use_known = false});
  auto signer = teacher(lib, dir);
  const long before = max_rss_kb();
  const auto start = Clock::now();
  kyso::formats::sign_pdf(*signer, in, out, {});
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%ld %ld %.2f\n", before, max_rss_kb(), secs);
  return 0;
}

// A child process (openssl ocsp, the TSA script), stopped by its pid at destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&&) = delete;
  Child& operator=(Child&&) = delete;
  ~Child() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Whether something listens on the port (read from /proc: a probing connect would hold up
// `openssl ocsp`, which serves one connection at a time).
bool listening(int port) {
  char hex[8];
  std::snprintf(hex, sizeof hex, ":%04X ", static_cast<unsigned>(port));
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    for (std::string line; std::getline(in, line);)
      if (line.find(hex) != std::string::npos && line.find(" 0A ") != std::string::npos)
        return true;
  }
  return false;
}

// CPU seconds (user + system) of the whole process so far: every thread's, SoftHSM's included.
double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// One case's best of its rounds: the highest rate, and the least CPU time per signature (what
// the case costs the machine, much less sensitive to other load than the wall clock).
struct Best {
  double rate = 0;
  double cpu_us = 0;
  template <typename Run>
  void take(int count, const Run& run) {
    const double cpu0 = cpu_seconds();
    const double r = run();
    const double us = (cpu_seconds() - cpu0) * 1e6 / count;
    rate = std::max(rate, r);
    cpu_us = cpu_us == 0 ? us : std::min(cpu_us, us);
  }
};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// B-T, then B-LT and B-LTA by kyso::formats::extend_file, per document; sizes from the files.
void longterm(kyso::Signer& signer, const std::string& dir, const std::filesystem::path& work,
              int m) {
  const std::string pki = dir + "/pki/";
  const int ocsp_port = free_port();
  const Child ocsp({"openssl", "ocsp", "-index", pki + "index.txt", "-CA", pki + "sub.crt",
                    "-rsigner", pki + "ocsp.crt", "-rkey", pki + "ocsp.key", "-port",
                    std::to_string(ocsp_port), "-ignore_err"});
  const std::string port_file = (work / "tsa.port").string();
  const Child tsa_server({"python3", KYSO_SOURCE_DIR "/tests/provisioning/tsa_http.py",
                          pki + "openssl.cnf", port_file});
  std::string tsa_port;
  for (int i = 0; i < 600 && (tsa_port.empty() || !listening(ocsp_port)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(port_file);
    std::getline(in, tsa_port);
  }
  if (tsa_port.empty() || !listening(ocsp_port)) throw std::runtime_error("responders not up");

  kyso::formats::TsaConfig tsa;
  tsa.url = "http://127.0.0.1:" + tsa_port + "/";
  tsa.trusted_pem = {pki + "root.crt"};
  kyso::formats::ExtendOptions o;
  o.trust.anchors = {pki + "root.crt"};
  o.trust.ocsp_url = "http://127.0.0.1:" + std::to_string(ocsp_port) + "/";
  o.tsa = tsa;
  struct Row {
    double bt_ms = 0, lt_ms = 0, lta_ms = 0;
    double bt_size = 0, lt_size = 0, lta_size = 0;
  };
  auto size = [](const std::string& f) {
    return static_cast<double>(std::filesystem::file_size(f));
  };
  auto extend = [&](const std::string& f, kyso::formats::BaselineLevel to, double& ms,
                    double& bytes) {
    o.to = to;
    const auto start = Clock::now();
    (void)kyso::formats::extend_file(f, o);
    ms += ms_since(start);
    bytes += size(f);
  };
  Row pdf;
  Row xml;
  Row cms;
  for (int i = 0; i < m; ++i) {
    const std::string base = (work / ("lt-" + std::to_string(i))).string();
    {
      std::ofstream out(base + ".in.pdf", std::ios::binary);
      kyso::test::write_pdf(out, transcript_page(i));
    }
    kyso::formats::PdfSignOptions po;
    po.tsa = tsa;
    auto start = Clock::now();
    kyso::formats::sign_pdf(signer, base + ".in.pdf", base + ".pdf", po);
    pdf.bt_ms += ms_since(start);
    pdf.bt_size += size(base + ".pdf");
    extend(base + ".pdf", kyso::formats::BaselineLevel::LT, pdf.lt_ms, pdf.lt_size);
    extend(base + ".pdf", kyso::formats::BaselineLevel::LTA, pdf.lta_ms, pdf.lta_size);

    const std::string x = transcript_xml(i);
    kyso::formats::XmlSignOptions xo;
    xo.reference_id = "hb-" + std::to_string(i);
    xo.container = "ConDau";
    xo.level = kyso::formats::XmlLevel::XadesT;
    xo.tsa = tsa;
    start = Clock::now();
    const kyso::Bytes signed_xml = kyso::formats::sign_xml(
        signer, {reinterpret_cast<const std::uint8_t*>(x.data()), x.size()}, xo);
    xml.bt_ms += ms_since(start);
    std::ofstream(base + ".xml", std::ios::binary)
        .write(reinterpret_cast<const char*>(signed_xml.data()),
               static_cast<std::streamsize>(signed_xml.size()));
    xml.bt_size += size(base + ".xml");
    extend(base + ".xml", kyso::formats::BaselineLevel::LT, xml.lt_ms, xml.lt_size);
    extend(base + ".xml", kyso::formats::BaselineLevel::LTA, xml.lta_ms, xml.lta_size);

    kyso::formats::CmsOptions co;
    co.detached = false;
    co.tsa = tsa;
    start = Clock::now();
    const kyso::Bytes p7m = kyso::formats::sign_cms(
        signer, {reinterpret_cast<const std::uint8_t*>(x.data()), x.size()}, co);
    cms.bt_ms += ms_since(start);
    std::ofstream(base + ".p7m", std::ios::binary)
        .write(reinterpret_cast<const char*>(p7m.data()), static_cast<std::streamsize>(p7m.size()));
    cms.bt_size += size(base + ".p7m");
    extend(base + ".p7m", kyso::formats::BaselineLevel::LT, cms.lt_ms, cms.lt_size);
    extend(base + ".p7m", kyso::formats::BaselineLevel::LTA, cms.lta_ms, cms.lta_size);
  }
  std::printf(
      "long-term levels: %d transcript(s) each (CAdES attached), TSA (openssl ts) and OCSP "
      "(openssl ocsp) on loopback; per document\n",
      m);
  std::printf("%-34s %10s %8s %12s\n", "case", "ms/doc", "x B-T", "bytes added");
  for (const auto& [name, r] :
       {std::pair{"PAdES", pdf}, std::pair{"XAdES", xml}, std::pair{"CAdES", cms}}) {
    const double d = m;
    std::printf("%-34s %10.1f %8.2f %12.0f   (%.0f bytes signed)\n",
                (std::string(name) + " B-T sign").c_str(), r.bt_ms / d, 1.0, 0.0, r.bt_size / d);
    std::printf("%-34s %10.1f %8.2f %12.0f\n", (std::string(name) + " extend B-T -> B-LT").c_str(),
                r.lt_ms / d, r.lt_ms / r.bt_ms, (r.lt_size - r.bt_size) / d);
    std::printf("%-34s %10.1f %8.2f %12.0f\n",
                (std::string(name) + " extend B-LT -> B-LTA").c_str(), r.lta_ms / d,
                r.lta_ms / r.bt_ms, (r.lta_size - r.lt_size) / d);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int n = 1000;
  int big_mb = 200;
  int lt = 20;
  int school = 2000;
  int rounds = 5;
  std::string work_root = std::filesystem::temp_directory_path().string();
  std::string big_in;
  std::string big_out;
  std::vector<std::string> sign_big_args;
  std::vector<std::string> only;
  CLI::App app{
      "kyso-bench-format-sign: XML-DSig and PAdES through kyso::formats against raw "
      "PKCS#11 C_Sign"};
  app.add_option("--dir", dir, "a token made by tests/pki/make-demo-token.sh")->required();
  app.add_option("--n", n, "transcripts per run")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", rounds, "interleaved rounds, the best kept")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--school", school, "transcripts in the school XML file (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--big-mb", big_mb, "size of the large PDF (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--lt", lt, "transcripts for the long-term levels (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--work", work_root, "where the PDFs are written while signed")
      ->capture_default_str();
  app.add_option("--only", only,
                 "run only these cases (for counting one with perf or callgrind): raw raw2 xml "
                 "school pdf-bytes pdf-file pdf-threads xml-two pdf-two")
      ->check(CLI::IsMember({"raw", "raw2", "xml", "school", "pdf-bytes", "pdf-file", "pdf-threads",
                             "xml-two", "pdf-two"}));
  app.add_option("--sign-big", sign_big_args,
                 "IN OUT: sign one PDF and exit (the child whose peak RSS is measured)")
      ->expected(2);
  CLI11_PARSE(app, argc, argv);
  if (sign_big_args.size() == 2) {
    big_in = sign_big_args[0];
    big_out = sign_big_args[1];
  }
  ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
  try {
    if (!big_in.empty()) return sign_big(dir, big_in, big_out);

    const auto work =
        std::filesystem::path(work_root) / ("kyso-bench-format-" + std::to_string(::getpid()));
    std::filesystem::create_directories(work);
    std::vector<std::string> xmls;
    for (int i = 0; i < n; ++i) xmls.push_back(transcript_xml(i));
    for (int i = 0; i < n; ++i) {
      std::ofstream out(work / ("hb-" + std::to_string(i) + ".pdf"), std::ios::binary);
      kyso::test::write_pdf(out, transcript_page(i));
    }

    kyso::pkcs11::Library lib({.paths = {kModule}, .use_p11kit = false, .use_known = false});
    auto signer = teacher(lib, dir);
    // The baseline's inputs: DigestInfo(SHA-256) || a distinct hash per transcript, what
    // CKM_RSA_PKCS signs for rsa-sha256.
    const kyso::bench::RawPkcs11 raw_token(kModule, "Kyso Demo ", kPin);
    static constexpr unsigned char kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                0x01, 0x05, 0x00, 0x04, 0x20};
    std::vector<std::vector<unsigned char>> inputs;
    for (int i = 0; i < n; ++i) {
      const std::string name = "hb-" + std::to_string(i);
      const kyso::Bytes h =
          kyso::sha256({reinterpret_cast<const std::uint8_t*>(name.data()), name.size()});
      auto& in = inputs.emplace_back(std::begin(kPrefix), std::end(kPrefix));
      in.insert(in.end(), h.begin(), h.end());
    }

    std::size_t bytes_out = 0;
    // The transcript's signature slot: the data element's id and the container it goes in.
    const auto xml_options = [](int i) {
      kyso::formats::XmlSignOptions o;
      o.reference_id = "hb-" + std::to_string(i) + "-dl";
      o.container = "ChuKyGVCN";
      return o;
    };
    // XML: parse, sign the data element (enveloped, rsa-sha256 + SigningTime), serialize.
    auto xml_run = [&] {
      const auto start = Clock::now();
      for (int i = 0; i < n; ++i) {
        const auto& x = xmls[static_cast<std::size_t>(i)];
        bytes_out += kyso::formats::sign_xml(
                         *signer, {reinterpret_cast<const std::uint8_t*>(x.data()), x.size()},
                         xml_options(i))
                         .size();
      }
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    // PDF: PAdES B-B incremental update, bytes to bytes (as the XML case, and as the agent gets
    // PDFs over its WebSocket) ...
    std::vector<kyso::Bytes> pdfs;
    for (int i = 0; i < n; ++i) {
      std::ifstream f(work / ("hb-" + std::to_string(i) + ".pdf"), std::ios::binary);
      pdfs.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    auto pdf_mem_run = [&] {
      const auto start = Clock::now();
      for (const auto& p : pdfs) bytes_out += kyso::formats::sign_pdf(*signer, p, {}).size();
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    // ... and file to file (read, temporary file, rename: the file system's cost included).
    auto pdf_run = [&] {
      const auto start = Clock::now();
      for (int i = 0; i < n; ++i) {
        const auto in = (work / ("hb-" + std::to_string(i) + ".pdf")).string();
        kyso::formats::sign_pdf(*signer, in, in + ".signed.pdf", {});
      }
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    // Two-phase (prepare.hpp): the server prepares with the certificate chain only, the token
    // signs the digest, the server embeds (state MAC and signature checked). Goal: >= 0.90 of
    // the single call above.
    const kyso::formats::StateKey key = kyso::formats::StateKey::generate();
    std::vector<kyso::Bytes> chain{signer->credential().cert.der};
    for (const auto& c : signer->credential().chain) chain.push_back(c);
    const kyso::Credential server_view = kyso::formats::signer_from_chain(chain);
    auto sign_prepared = [&](const kyso::formats::Prepared& p) {
      const kyso::Bytes sig = signer->sign_digest(p.algorithm, p.digest);
      return kyso::formats::embed(p.state, sig, key).document.size();
    };
    auto xml2_run = [&] {
      const auto start = Clock::now();
      for (int i = 0; i < n; ++i) {
        const auto& x = xmls[static_cast<std::size_t>(i)];
        bytes_out += sign_prepared(
            kyso::formats::prepare_xml({reinterpret_cast<const std::uint8_t*>(x.data()), x.size()},
                                       server_view, xml_options(i), key));
      }
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    auto pdf2_run = [&] {
      const auto start = Clock::now();
      for (const auto& p : pdfs)
        bytes_out += sign_prepared(kyso::formats::prepare_pdf(p, server_view, {}, key));
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    // Two documents in flight (two threads, each on its own token session): the format work of
    // one transcript overlaps the token's signature of the other, which is how a batch should
    // drive a slow USB token. Its baseline is raw C_Sign on two sessions in two threads.
    auto pdf_threads_run = [&] {
      const auto start = Clock::now();
      std::vector<std::thread> pool;
      for (int t = 0; t < 2; ++t) {
        pool.emplace_back([&, t] {
          for (int i = t; i < n; i += 2)
            (void)kyso::formats::sign_pdf(*signer, pdfs[static_cast<std::size_t>(i)], {});
        });
      }
      for (auto& th : pool) th.join();
      return n / std::chrono::duration<double>(Clock::now() - start).count();
    };
    Best raw;
    Best raw2;
    Best pdf2;
    Best xml;
    Best pdf;
    Best pdf_mem;
    Best xml_two;
    Best pdf_two;
    Best school_best;
    // A whole school's file: one document of `school` transcripts, parsed once, one signature per
    // transcript, written once (signing cost must not grow with the file).
    std::string school_xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DanhSachHocBa Truong=\"Trường THPT Chu Văn "
        "An\">";
    for (int i = 0; i < school; ++i) {
      const std::string one = transcript_xml(i);
      school_xml += one.substr(one.find("<HocBa"));
    }
    school_xml += "</DanhSachHocBa>\n";
    auto school_run = [&] {
      const auto start = Clock::now();
      auto doc = kyso::formats::XmlDocument::parse(
          {reinterpret_cast<const std::uint8_t*>(school_xml.data()), school_xml.size()});
      for (int i = 0; i < school; ++i) {
        kyso::formats::XmlSignOptions o;
        o.reference_id = "hb-" + std::to_string(i);
        o.container = "ConDau";
        doc.sign(*signer, o);
      }
      bytes_out += doc.serialize().size();
      return school / std::chrono::duration<double>(Clock::now() - start).count();
    };
    auto raw_run = [&](int sessions) {
      return [&, sessions] { return raw_token.run(kTeacherKeyId, CKM_RSA_PKCS, inputs, sessions); };
    };
    // Raw runs first and last in every round: a quiet moment the formats runs got, the
    // baseline gets too (best of each).
    const auto runs = [&](const char* name) {
      return only.empty() || std::ranges::find(only, name) != only.end();
    };
    for (int r = 0; r < rounds; ++r) {
      if (runs("raw")) raw.take(n, raw_run(1));
      if (runs("pdf-bytes")) pdf_mem.take(n, pdf_mem_run);
      if (runs("pdf-file")) pdf.take(n, pdf_run);
      if (runs("xml")) xml.take(n, xml_run);
      if (runs("school") && school > 0) school_best.take(school, school_run);
      if (runs("pdf-two")) pdf_two.take(n, pdf2_run);
      if (runs("xml-two")) xml_two.take(n, xml2_run);
      if (runs("raw2")) raw2.take(n, raw_run(2));
      if (runs("pdf-threads")) pdf2.take(n, pdf_threads_run);
      if (runs("raw")) raw.take(n, raw_run(1));
    }

    std::printf(
        "bench/format-sign: %d transcripts, RSA-2048 rsa-sha256 on SoftHSM2, same token, same run, "
        "best of %d interleaved rounds; PDFs in %s\n",
        n, rounds, work_root.c_str());
    std::printf("%-34s %10s %10s %8s %8s\n", "case", "sig/s", "raw sig/s", "ratio", "cpu us");
    auto row = [&](const char* name, const Best& b, const Best& base, const std::string& note) {
      if (b.cpu_us == 0) return;  // not run (--only)
      std::printf("%-34s %10.1f %10.1f %8.2f %8.0f   %s\n", name, b.rate, base.rate,
                  b.rate / base.rate, b.cpu_us, note.c_str());
    };
    auto of_single = [](const Best& two, const Best& one) {
      std::array<char, 64> b{};
      std::snprintf(b.data(), b.size(), "(%.2f of the single call; goal >= 0.90)",
                    two.rate / one.rate);
      return std::string(b.data());
    };
    row("raw C_Sign of bare hashes", raw, raw, "");
    row("raw C_Sign, 2 sessions", raw2, raw, "(2 threads, a session each: the 2-thread baseline)");
    row("XML-DSig enveloped (parse+sign+out)", xml, raw, "(goal >= 0.80)");
    row("XML school file, seal per item", school_best, raw,
        "(" + std::to_string(school) + " transcripts, " + std::to_string(school_xml.size() / 1000) +
            " kB, one document; goal >= 0.85)");
    row("PAdES B-B (bytes to bytes)", pdf_mem, raw, "(goal >= 0.70)");
    row("PAdES B-B (file to file)", pdf, raw,
        "(read, temp file, rename in " + work_root + "; goal >= 0.80 on tmpfs)");
    row("PAdES B-B bytes, 2 threads", pdf2, raw2, "(2 in flight; raw on 2 sessions; goal >= 0.90)");
    row("XML-DSig two-phase (prep+sign+emb)", xml_two, raw, of_single(xml_two, xml));
    row("PAdES B-B two-phase (prep+sign+emb)", pdf_two, raw, of_single(pdf_two, pdf_mem));

    // 200 MB PDF: signed in a child process, whose own peak RSS is what we report.
    if (!only.empty() || big_mb == 0) {
      if (lt > 0) longterm(*signer, dir, work, lt);
      std::error_code ec;
      std::filesystem::remove_all(work, ec);
      return 0;
    }
    const auto big = (work / "big.pdf").string();
    {
      std::ofstream out(big, std::ios::binary);
      kyso::test::write_pdf(out, transcript_page(0), false,
                            static_cast<std::size_t>(big_mb) << 20U);
    }
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string big_out_path = big + ".signed.pdf";
    std::vector<std::string> args{self, "--dir", dir, "--sign-big", big, big_out_path};
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid = -1;
    if (posix_spawn(&pid, self.c_str(), &fa, nullptr, cargv.data(), environ) != 0)
      throw std::runtime_error("spawn");
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    std::string line(256, '\0');
    const ssize_t got = ::read(fds[0], line.data(), line.size() - 1);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    long before = 0;
    long peak = 0;
    double secs = 0;
    if (got <= 0 || std::sscanf(line.c_str(), "%ld %ld %lf", &before, &peak, &secs) != 3) {
      throw std::runtime_error("big PDF child failed");
    }
    std::printf(
        "PAdES B-B of a %d MB PDF: %.2f s, peak RSS %.1f MB (%.1f MB before signing)   (goal < 64 "
        "MB)\n",
        big_mb, secs, static_cast<double>(peak) / 1024.0, static_cast<double>(before) / 1024.0);
    if (lt > 0) longterm(*signer, dir, work, lt);
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/format-sign: %s\n", e.what());
    return 1;
  }
  return 0;
}
