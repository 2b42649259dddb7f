#include "fixture.hpp"

#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace kyso::test {
namespace {

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// SoftHSM2's file store is not safe for several processes at once: every process rewrites the
// token's generation file, and a reader meeting a half-written one drops objects. ctest runs
// test processes in parallel, so each process signs on its own copy of the run's fresh token
// (same keys and certificates), under KYSO_TEST_DIR/proc/<pid>, set before any module loads.
void use_private_token_copy(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path own = fs::path(dir) / "proc" / std::to_string(::getpid());
  fs::remove_all(own);
  fs::create_directories(own);
  fs::copy(fs::path(dir) / "tokens", own / "tokens", fs::copy_options::recursive);
  const fs::path conf = own / "softhsm2.conf";
  std::ofstream(conf) << "directories.tokendir = " << (own / "tokens").string()
                      << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  static const struct Cleanup {
    fs::path path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{own};
}

Fixture load_fixture() {
  Fixture f;
  const char* dir = std::getenv("KYSO_TEST_DIR");
  if (dir == nullptr) throw std::runtime_error("KYSO_TEST_DIR not set: run through ctest");
  f.dir = dir;
  use_private_token_copy(f.dir);
  ::setenv("KYSO_CLI", KYSO_CLI_PATH, 0);
  std::ifstream in(f.dir + "/manifest.json");
  if (!in) throw std::runtime_error("no manifest.json in " + f.dir);
  f.manifest = nlohmann::json::parse(in);
  f.module = f.manifest.at("module").get<std::string>();
  const char* fault = std::getenv("KYSO_FAULT_MODULE");
  f.fault_module = fault != nullptr ? fault : KYSO_FAULT_MODULE_PATH;
  f.user_pin = f.manifest.at("user_pin").get<std::string>();
  f.pin_file = f.manifest.at("pin_file").get<std::string>();
  for (const auto& c : f.manifest.at("credentials")) {
    DemoCredential d;
    d.name = c.at("name");
    d.role = c.at("role");
    d.id_hex = c.at("id");
    d.key = c.at("key");
    d.cert_path = c.at("cert");
    d.cert_der = read_file(c.at("cert_der").get<std::string>());
    d.status = c.at("status");
    f.credentials.push_back(std::move(d));
  }
  return f;
}

void* fault_handle() {
  const auto& f = fixture();
  void* h = dlopen(f.fault_module.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) h = dlopen(f.fault_module.c_str(), RTLD_NOW);
  if (h == nullptr) throw std::runtime_error("cannot load fault module " + f.fault_module);
  return h;
}

}  // namespace

std::string DemoCredential::credential_id() const {
  return to_hex(sha256(cert_der));
}

const DemoCredential& Fixture::credential(const std::string& name) const {
  for (const auto& c : credentials) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no demo credential " + name);
}

const Fixture& fixture() {
  static const Fixture f = load_fixture();
  return f;
}

bool openssl_verify(std::span<const std::uint8_t> cert_der, SignAlgorithm alg,
                    std::span<const std::uint8_t> digest, std::span<const std::uint8_t> signature) {
  X509Ptr cert = x509_from_der(cert_der);
  EVP_PKEY* pkey = X509_get0_pubkey(cert.get());
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
  const EVP_MD* md = EVP_get_digestbyname(openssl_md_name(hash_of(alg)));
  if (EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) return false;
  if (is_pss(alg)) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1) {
      return false;
    }
  } else if (is_rsa(alg)) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) return false;
  }
  return EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), digest.data(),
                         digest.size()) == 1;
}

void Faults::set(const char* key, long value) {
  auto fn = reinterpret_cast<void (*)(const char*, long)>(dlsym(fault_handle(), "kyso_fault_set"));
  fn(key, value);
}

long Faults::get(const char* key) {
  auto fn = reinterpret_cast<long (*)(const char*)>(dlsym(fault_handle(), "kyso_fault_get"));
  return fn(key);
}

void Faults::reset() {
  auto fn = reinterpret_cast<void (*)()>(dlsym(fault_handle(), "kyso_fault_reset"));
  fn();
}

std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, out};
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

int free_loopback_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = s >= 0 && ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (s >= 0) ::close(s);
  if (!ok) throw std::runtime_error("no free loopback port");
  return ntohs(a.sin_port);
}

}  // namespace kyso::test
