// bench/remote-sign: N hashes (default 2,000) through Kyso's CSC client -> kyso-appliance (HTTPS
// on loopback, in this process) -> SoftHSM2, against raw PKCS#11 C_Sign on the same key of the
// same token in the same run, with as many sessions as the appliance signs with. Prints both
// rates, the ratio remote/raw (goal >= 0.75) and the HTTP round trips (goal <= 2 per multisign
// chunk + a constant).
//
//   kyso-bench-remote-sign --dir DIR [--hashes N] [--multisign M] [--threads T] [--rounds R]
// DIR is a token made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one).

#include <dlfcn.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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

#include "kyso/core/bytes.hpp"
#include "kyso/remote/appliance.hpp"
#include "kyso/remote/remote_signer.hpp"
#include "kyso/remote/security.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kTotp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

void check(CK_RV rv, const char* what) {
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    throw std::runtime_error(std::string(what) + " failed: " + std::to_string(rv));
  }
}

void sh(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("failed: " + cmd);
  }
}

kyso::Secret secret(std::string_view s) {
  kyso::Secret out;
  out.assign(s);
  return out;
}

// The baseline: C_SignInit + C_Sign in a loop, one session per thread, nothing else.
double raw_rate(const std::string& pin, unsigned char key_id, int n, int threads) {
  void* h = dlopen(kModule, RTLD_NOW);
  if (h == nullptr) throw std::runtime_error("cannot load SoftHSM2");
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  check(get(&f), "C_GetFunctionList");
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  if (const CK_RV rv = f->C_Initialize(&args); rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    check(rv, "C_Initialize");
  }
  CK_ULONG count = 0;
  check(f->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(count);
  check(f->C_GetSlotList(CK_TRUE, slots.data(), &count), "C_GetSlotList");
  CK_SLOT_ID slot = 0;
  for (auto s : slots) {
    CK_TOKEN_INFO ti{};
    f->C_GetTokenInfo(s, &ti);
    if (std::memcmp(ti.label, "Kyso Demo ", 10) == 0) slot = s;
  }
  std::vector<CK_SESSION_HANDLE> sessions(static_cast<std::size_t>(threads));
  for (auto& s : sessions) {
    check(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s), "C_OpenSession");
  }
  std::string p = pin;
  check(f->C_Login(sessions[0], CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(p.data()),
                   static_cast<CK_ULONG>(p.size())),
        "C_Login");
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  std::array<CK_ATTRIBUTE, 2> tmpl{{{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &key_id, 1}}};
  CK_OBJECT_HANDLE key = 0;
  CK_ULONG found = 0;
  check(f->C_FindObjectsInit(sessions[0], tmpl.data(), 2), "C_FindObjectsInit");
  check(f->C_FindObjects(sessions[0], &key, 1, &found), "C_FindObjects");
  f->C_FindObjectsFinal(sessions[0]);
  if (found != 1) throw std::runtime_error("key not found");
  // CKM_RSA_PKCS over DigestInfo(SHA-256) || digest: what rsa-sha256 over a hash needs.
  std::vector<unsigned char> input = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  input.resize(input.size() + 32, 0x5a);

  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
      std::vector<unsigned char> in = input;
      std::array<unsigned char, 512> sig{};
      const auto s = sessions[static_cast<std::size_t>(t)];
      for (int i = 0; i < n / threads; ++i) {
        CK_ULONG len = sig.size();
        check(f->C_SignInit(s, &mech, key), "C_SignInit");
        check(f->C_Sign(s, in.data(), static_cast<CK_ULONG>(in.size()), sig.data(), &len),
              "C_Sign");
      }
    });
  }
  for (auto& th : pool) th.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto s : sessions) f->C_CloseSession(s);  // the login stays: it is the process's
  return (n / threads) * threads / secs;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int hashes = 2000;
  std::size_t multisign = 100;
  unsigned threads = 2;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--dir" && has) {
      dir = argv[++i];
    } else if (a == "--hashes" && has) {
      hashes = std::atoi(argv[++i]);
    } else if (a == "--multisign" && has) {
      multisign = std::stoul(argv[++i]);
    } else if (a == "--threads" && has) {
      threads = static_cast<unsigned>(std::stoul(argv[++i]));
    } else if (a == "--rounds" && has) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s --dir TOKEN_DIR [--hashes N] [--multisign M] [--threads T] "
                   "[--rounds R]\n",
                   argv[0]);
      return 2;
    }
  }
  if (dir.empty() || hashes <= 0 || multisign == 0 || threads == 0) {
    std::fprintf(stderr, "%s: --dir TOKEN_DIR is required\n", argv[0]);
    return 2;
  }
  try {
    ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
    std::string pin;
    std::ifstream(dir + "/pin.txt") >> pin;
    std::ifstream der_in(dir + "/certs/teacher.der", std::ios::binary);
    const kyso::Bytes der{std::istreambuf_iterator<char>(der_in), std::istreambuf_iterator<char>()};
    const std::string cred_id = kyso::to_hex(kyso::sha256(der));

    // TLS for the appliance: a throw-away CA and a loopback certificate.
    std::string tmp = (fs::temp_directory_path() / "kyso-bench-remote.XXXXXX").string();
    if (mkdtemp(tmp.data()) == nullptr) throw std::runtime_error("mkdtemp");
    struct Cleanup {
      std::string d;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(d, ec);
      }
    } cleanup{tmp};
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ca"
       " -keyout " +
       tmp + "/ca.key -out " + tmp + "/ca.crt");
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1"
       " -keyout " +
       tmp + "/tls.key -out " + tmp + "/tls.csr");
    std::ofstream(tmp + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
    sh("openssl x509 -req -in " + tmp + "/tls.csr -CA " + tmp + "/ca.crt -CAkey " + tmp +
       "/ca.key -CAcreateserial -days 1 -extfile " + tmp + "/san.ext -out " + tmp + "/tls.crt");

    kyso::remote::ApplianceConfig cfg;
    cfg.port = 0;
    cfg.tls_cert_file = tmp + "/tls.crt";
    cfg.tls_key_file = tmp + "/tls.key";
    cfg.pkcs11_modules = {kModule};
    cfg.state_db = tmp + "/state.db";
    cfg.users = {{"bench", kyso::remote::hash_password(secret("bench-pw"), 12), kTotp, {cred_id}}};
    cfg.limits.multisign = multisign;
    cfg.limits.sign_threads = threads;
    cfg.limits.totp_window = 2 + static_cast<unsigned>(rounds);
    kyso::remote::Appliance appliance(cfg);
    appliance.start();

    kyso::remote::ClientOptions opts;
    opts.base_url = "https://127.0.0.1:" + std::to_string(appliance.port()) + "/csc/v2";
    opts.ca_file = tmp + "/ca.crt";

    std::vector<kyso::Bytes> digests(static_cast<std::size_t>(hashes), kyso::Bytes(32));
    std::printf(
        "bench/remote-sign: %d hashes, RSA-2048 rsa-sha256, SoftHSM2, multisign %zu, "
        "%u signing sessions, best of %d\n",
        hashes, multisign, threads, rounds);
    std::printf("%-10s %12s %12s %8s %12s %10s %10s\n", "round", "raw sig/s", "remote sig/s",
                "ratio", "round trips", "chunks", "rt/chunk");
    double best_raw = 0;
    double best_remote = 0;
    std::vector<double> ratios;
    std::size_t trips = 0;
    std::size_t chunks = (static_cast<std::size_t>(hashes) + multisign - 1) / multisign;
    (void)raw_rate(pin, 0x01, 100, static_cast<int>(threads));  // warm up the key and sessions
    for (int r = 0; r < rounds; ++r) {
      for (auto& d : digests) RAND_bytes(d.data(), 32);
      const double raw = raw_rate(pin, 0x01, hashes, static_cast<int>(threads));

      // End to end, as the agent does it: log in, list, one authorization, sign.
      const auto start = Clock::now();
      auto client = std::make_shared<kyso::remote::CscClient>(opts);
      client->login("bench", secret("bench-pw"));
      auto adapter = std::make_shared<kyso::remote::CscAdapter>("bench", client);
      kyso::remote::RemoteSigner signer(adapter, adapter->credentials().front());
      signer.set_pin(secret(pin));
      const kyso::Secret otp =
          secret(kyso::remote::totp_generate(kTotp, std::time(nullptr) + 30L * (r - 1)));
      signer.authorize(&otp, digests);
      const auto results = signer.sign_digests(kyso::SignAlgorithm::RsaPkcs1Sha256, digests);
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      for (const auto& res : results) {
        if (!res.ok()) throw *res.error;
      }
      const double remote = hashes / secs;
      trips = adapter->round_trips();
      std::printf("%-10d %12.0f %12.0f %8.3f %12zu %10zu %10.2f\n", r + 1, raw, remote,
                  remote / raw, trips, chunks,
                  static_cast<double>(trips) / static_cast<double>(chunks));
      ratios.push_back(remote / raw);
      best_raw = std::max(best_raw, raw);
      best_remote = std::max(best_remote, remote);
    }
    // Each round pairs raw and remote back to back; the median of those ratios is the least
    // sensitive to other load on the machine.
    std::ranges::sort(ratios);
    const double median = ratios[ratios.size() / 2];
    std::printf("%-10s %12.0f %12.0f %8.3f   (median of the rounds' ratios; goal >= 0.75)\n",
                "best", best_raw, best_remote, median);
    std::printf(
        "round trips: %zu for %zu chunks = 2 x %zu + %zu (login, list, info)"
        "   (goal <= 2 per chunk + constant)\n",
        trips, chunks, chunks, trips - 2 * chunks);
    appliance.stop();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/remote-sign: %s\n", e.what());
    return 1;
  }
}
