// bench/format-sign: N transcripts signed as enveloped XML-DSig and as PAdES B-B through
// kyso::formats, and in the same run the bare SHA-256 hashes through raw PKCS#11 (C_SignInit +
// C_Sign, one session) with the same RSA-2048 key on the same SoftHSM2 token. Prints rates and
// the ratios formats/raw (goals: XML >= 0.80, PDF >= 0.70), then the peak RSS of a child process
// signing a 200 MB PDF (goal < 64 MB).
//
//   kyso-bench-format-sign --dir TOKEN_DIR [--n 1000] [--big-mb 200] [--school 2000] [--work DIR]
// DIR holds the PDFs while they are signed (default: a fresh directory under /tmp).
// TOKEN_DIR is made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one).

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

#include "kyso/core/secret.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/xml.hpp"
#include "kyso/pkcs11/library.hpp"
#include "pdf_writer.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "123456";
constexpr unsigned char kTeacherKeyId = 0x01;

void ck(CK_RV rv, const char* what) {
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    throw std::runtime_error(std::string(what) + " failed: " + std::to_string(rv));
  }
}

// The baseline: bare hashes through C_SignInit + C_Sign, nothing else.
double raw_rate(int n) {
  void* h = dlopen(kModule, RTLD_NOW);
  if (h == nullptr) throw std::runtime_error("cannot load SoftHSM2");
  CK_FUNCTION_LIST* f = nullptr;
  ck(reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"))(&f),
     "C_GetFunctionList");
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  if (const CK_RV rv = f->C_Initialize(&args); rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
    ck(rv, "C_Initialize");
  CK_ULONG count = 0;
  ck(f->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  ck(f->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
  CK_SLOT_ID slot = 0;
  for (auto s : slots) {
    CK_TOKEN_INFO ti{};
    f->C_GetTokenInfo(s, &ti);
    if (std::memcmp(ti.label, "Kyso Demo ", 10) == 0) slot = s;
  }
  CK_SESSION_HANDLE session = 0;
  ck(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session), "C_OpenSession");
  ck(f->C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kPin)), 6),
     "C_Login");
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  unsigned char id = kTeacherKeyId;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
  CK_OBJECT_HANDLE key = 0;
  CK_ULONG found = 0;
  ck(f->C_FindObjectsInit(session, tmpl, 2), "C_FindObjectsInit");
  ck(f->C_FindObjects(session, &key, 1, &found), "C_FindObjects");
  f->C_FindObjectsFinal(session);
  if (found != 1) throw std::runtime_error("teacher key not found");
  // DigestInfo(SHA-256) prefix + a hash: what CKM_RSA_PKCS signs for rsa-sha256.
  std::vector<unsigned char> in = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                   0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  in.resize(in.size() + 32, 0x5a);
  CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
  std::vector<unsigned char> sig(512);
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    CK_ULONG len = static_cast<CK_ULONG>(sig.size());
    ck(f->C_SignInit(session, &mech, key), "C_SignInit");
    ck(f->C_Sign(session, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), &len), "C_Sign");
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  f->C_Logout(session);
  f->C_CloseSession(session);
  return n / secs;
}

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
  signer->authorize(&pin, {});
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

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int n = 1000;
  int big_mb = 200;
  int school = 2000;
  std::string work_root = std::filesystem::temp_directory_path().string();
  std::string big_in;
  std::string big_out;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--n")
      n = std::atoi(argv[i + 1]);
    else if (a == "--big-mb")
      big_mb = std::atoi(argv[i + 1]);
    else if (a == "--work")
      work_root = argv[i + 1];
    else if (a == "--sign-big" && i + 2 < argc) {
      big_in = argv[i + 1];
      big_out = argv[i + 2];
      ++i;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: %s --dir TOKEN_DIR [--n N] [--big-mb MB]\n", argv[0]);
    return 2;
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

    const double raw = raw_rate(n);

    kyso::pkcs11::Library lib({.paths = {kModule}, .use_p11kit = false, .use_known = false});
    auto signer = teacher(lib, dir);
    // XML: parse, sign the data element (enveloped, rsa-sha256 + SigningTime), serialize.
    auto start = Clock::now();
    std::size_t bytes_out = 0;
    for (int i = 0; i < n; ++i) {
      kyso::formats::XmlSignOptions o;
      o.reference_id = "hb-" + std::to_string(i) + "-dl";
      o.container = "ChuKyGVCN";
      bytes_out +=
          kyso::formats::sign_xml(
              *signer,
              {reinterpret_cast<const std::uint8_t*>(xmls[static_cast<std::size_t>(i)].data()),
               xmls[static_cast<std::size_t>(i)].size()},
              o)
              .size();
    }
    const double xml = n / std::chrono::duration<double>(Clock::now() - start).count();
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
    start = Clock::now();
    {
      auto doc = kyso::formats::XmlDocument::parse(
          {reinterpret_cast<const std::uint8_t*>(school_xml.data()), school_xml.size()});
      for (int i = 0; i < school; ++i) {
        kyso::formats::XmlSignOptions o;
        o.reference_id = "hb-" + std::to_string(i);
        o.container = "ConDau";
        doc.sign(*signer, o);
      }
      bytes_out += doc.serialize().size();
    }
    const double school_rate = school / std::chrono::duration<double>(Clock::now() - start).count();
    // PDF: PAdES B-B incremental update, file to file.
    start = Clock::now();
    for (int i = 0; i < n; ++i) {
      const auto in = (work / ("hb-" + std::to_string(i) + ".pdf")).string();
      kyso::formats::sign_pdf(*signer, in, in + ".signed.pdf", {});
    }
    const double pdf = n / std::chrono::duration<double>(Clock::now() - start).count();
    // The same with two documents in flight (two threads, each on its own token session): the
    // format work of one transcript overlaps the token's signature of the other, which is how a
    // batch should drive a slow USB token.
    start = Clock::now();
    {
      std::vector<std::thread> pool;
      for (int t = 0; t < 2; ++t) {
        pool.emplace_back([&, t] {
          for (int i = t; i < n; i += 2) {
            const auto in = (work / ("hb-" + std::to_string(i) + ".pdf")).string();
            kyso::formats::sign_pdf(*signer, in, in + ".signed2.pdf", {});
          }
        });
      }
      for (auto& th : pool) th.join();
    }
    const double pdf2 = n / std::chrono::duration<double>(Clock::now() - start).count();

    std::printf(
        "bench/format-sign: %d transcripts, RSA-2048 rsa-sha256 on SoftHSM2, same token, same run; "
        "PDFs in %s\n",
        n, work_root.c_str());
    std::printf("%-34s %10s %10s %8s\n", "case", "sig/s", "raw sig/s", "ratio");
    std::printf("%-34s %10.1f %10.1f %8s\n", "raw C_Sign of bare hashes", raw, raw, "1.00");
    std::printf("%-34s %10.1f %10.1f %8.2f   (goal >= 0.80)\n",
                "XML-DSig enveloped (parse+sign+out)", xml, raw, xml / raw);
    std::printf("%-34s %10.1f %10.1f %8.2f   (%d transcripts, %.1f MB, one document)\n",
                "XML school file, seal per item", school_rate, raw, school_rate / raw, school,
                static_cast<double>(school_xml.size()) / 1e6);
    std::printf("%-34s %10.1f %10.1f %8.2f   (goal >= 0.70)\n", "PAdES B-B (file to file)", pdf,
                raw, pdf / raw);
    std::printf("%-34s %10.1f %10.1f %8.2f   (2 in flight; raw is 1 session)\n",
                "PAdES B-B, 2 threads", pdf2, raw, pdf2 / raw);

    // 200 MB PDF: signed in a child process, whose own peak RSS is what we report.
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
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/format-sign: %s\n", e.what());
    return 1;
  }
  return 0;
}
