// bench/token-sign: signatures per second through Kyso's token layer vs raw PKCS#11
// (C_SignInit + C_Sign in a loop, one session per thread) on the same SoftHSM2 token, in the
// same run, for RSA-2048 and ECDSA P-256 with 1 and 2 sessions. Prints the ratio Kyso/raw.
//
//   kyso-bench-token-sign --dir DIR [--rsa N] [--ec N] [--rounds R]
// DIR is a token made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one).

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/raw_pkcs11.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/library.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "123456";

double kyso_run(kyso::Signer& signer, kyso::SignAlgorithm alg, const kyso::Bytes& digest, int n,
                int threads) {
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < n / threads; ++i) (void)signer.sign_digest(alg, digest);
    });
  }
  for (auto& th : pool) th.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return (n / threads) * threads / secs;
}

std::string credential_id(const std::string& dir, const std::string& name) {
  std::ifstream in(dir + "/certs/" + name + ".der", std::ios::binary);
  const kyso::Bytes der{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return kyso::to_hex(kyso::sha256(der));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int n_rsa = 2000;
  int n_ec = 10000;
  int rounds = 3;
  CLI::App app{"kyso-bench-token-sign: Kyso's token layer against raw PKCS#11 C_Sign"};
  app.add_option("--dir", dir, "a token made by tests/pki/make-demo-token.sh")->required();
  app.add_option("--rsa", n_rsa, "RSA-2048 signatures per run")->capture_default_str();
  app.add_option("--ec", n_ec, "ECDSA P-256 signatures per run")->capture_default_str();
  app.add_option("--rounds", rounds, "interleaved rounds, the best kept")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);

  kyso::pkcs11::Library lib({.paths = {kModule}, .use_p11kit = false, .use_known = false});
  const kyso::bench::RawPkcs11 raw(kModule, "Kyso Demo ", kPin);

  struct Case {
    const char* name;
    const char* credential;
    unsigned char key_id;
    kyso::SignAlgorithm alg;
    CK_MECHANISM_TYPE mech;
    int n;
  };
  const kyso::Bytes digest(32, 0x5a);
  // CKM_RSA_PKCS signs DigestInfo(SHA-256) || digest, as Kyso's layer does for rsa-sha256.
  static constexpr unsigned char kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                              0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                              0x01, 0x05, 0x00, 0x04, 0x20};
  std::vector<unsigned char> digest_info(sizeof kPrefix + digest.size());
  std::memcpy(digest_info.data(), kPrefix, sizeof kPrefix);
  std::memcpy(digest_info.data() + sizeof kPrefix, digest.data(), digest.size());
  const Case cases[] = {
      {"RSA-2048 rsa-sha256", "teacher", 0x01, kyso::SignAlgorithm::RsaPkcs1Sha256, CKM_RSA_PKCS,
       n_rsa},
      {"ECDSA P-256 ecdsa-sha256", "teacher-ec", 0x04, kyso::SignAlgorithm::EcdsaSha256, CKM_ECDSA,
       n_ec},
  };

  std::printf("bench/token-sign: SoftHSM2 %s, %d rounds (best of each), same token, same run\n",
              kModule, rounds);
  std::printf("%-26s %8s %14s %14s %8s\n", "case", "sessions", "raw sig/s", "kyso sig/s",
              "kyso/raw");
  for (const auto& c : cases) {
    auto signer = lib.signer(credential_id(dir, c.credential));
    kyso::Secret pin;
    pin.assign(kPin);
    signer->authorize({.pin = &pin}, {});
    const std::vector<unsigned char> input =
        c.mech == CKM_RSA_PKCS ? digest_info
                               : std::vector<unsigned char>(digest.begin(), digest.end());
    const std::vector<std::vector<unsigned char>> inputs(static_cast<std::size_t>(c.n), input);
    for (int threads : {1, 2}) {
      (void)kyso_run(*signer, c.alg, digest, std::max(50, c.n / 20), threads);  // warm up
      double best_raw = 0;
      double best_kyso = 0;
      for (int r = 0; r < rounds; ++r) {  // interleaved, alternating who goes first
        if (r % 2 == 0) best_raw = std::max(best_raw, raw.run(c.key_id, c.mech, inputs, threads));
        best_kyso = std::max(best_kyso, kyso_run(*signer, c.alg, digest, c.n, threads));
        if (r % 2 == 1) best_raw = std::max(best_raw, raw.run(c.key_id, c.mech, inputs, threads));
      }
      std::printf("%-26s %8d %14.0f %14.0f %8.3f\n", c.name, threads, best_raw, best_kyso,
                  best_kyso / best_raw);
    }
  }
  return 0;
}
