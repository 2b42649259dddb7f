// A loopback RFC 3161 TSA for tests: HTTP/1.0 on 127.0.0.1, answers with OpenSSL's TS_RESP_CTX
// signed by the fixture's TSA key, or with an HTTP error status when asked to fail.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "format_support.hpp"

namespace kyso::test {

struct LoopbackTsa::Impl {
  int fd = -1;
  int port = 0;
  int fail_status = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> count{0};
  X509Ptr cert;
  EvpPkeyPtr key;
  std::unique_ptr<STACK_OF(X509),
                  FnDeleter<[](STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }>>
      chain{sk_X509_new_null()};
  std::thread thread;

  Bytes answer(const Bytes& query) const {
    std::unique_ptr<TS_RESP_CTX, FnDeleter<TS_RESP_CTX_free>> ctx(TS_RESP_CTX_new());
    TS_RESP_CTX_set_signer_cert(ctx.get(), cert.get());
    TS_RESP_CTX_set_signer_key(ctx.get(), key.get());
    TS_RESP_CTX_set_signer_digest(ctx.get(), EVP_sha256());
    TS_RESP_CTX_set_certs(ctx.get(), chain.get());
    TS_RESP_CTX_set_ess_cert_id_digest(ctx.get(), EVP_sha256());
    std::unique_ptr<ASN1_OBJECT, FnDeleter<ASN1_OBJECT_free>> policy(OBJ_txt2obj("2.999.1.1", 1));
    TS_RESP_CTX_set_def_policy(ctx.get(), policy.get());
    TS_RESP_CTX_add_md(ctx.get(), EVP_sha256());
    TS_RESP_CTX_add_md(ctx.get(), EVP_sha384());
    TS_RESP_CTX_add_md(ctx.get(), EVP_sha512());
    TS_RESP_CTX_set_accuracy(ctx.get(), 1, 0, 0);
    TS_RESP_CTX_add_flags(ctx.get(), TS_TSA_NAME);  // as most TSAs and the demo PKI's do
    BioPtr in(BIO_new_mem_buf(query.data(), static_cast<int>(query.size())));
    std::unique_ptr<TS_RESP, FnDeleter<TS_RESP_free>> resp(
        TS_RESP_create_response(ctx.get(), in.get()));
    if (!resp) return {};
    unsigned char* der = nullptr;
    const int n = i2d_TS_RESP(resp.get(), &der);
    Bytes out(der, der + std::max(n, 0));
    OPENSSL_free(der);
    return out;
  }

  void serve_one(int c) const {
    std::string req;
    std::array<char, 4096> buf{};
    std::size_t body_at = std::string::npos;
    std::size_t length = 0;
    while (true) {
      const ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      req.append(buf.data(), static_cast<std::size_t>(n));
      if (body_at == std::string::npos) {
        const auto end = req.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        body_at = end + 4;
        std::string head = req.substr(0, end);
        for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const auto cl = head.find("content-length:");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 15));
      }
      if (req.size() >= body_at + length) break;
    }
    std::string reply;
    if (fail_status != 0) {
      reply = "HTTP/1.0 " + std::to_string(fail_status) +
              " Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    } else {
      const Bytes q(req.begin() + static_cast<long>(body_at),
                    req.begin() + static_cast<long>(body_at + length));
      const Bytes a = answer(q);
      reply = "HTTP/1.0 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: " +
              std::to_string(a.size()) + "\r\nConnection: close\r\n\r\n" +
              std::string(a.begin(), a.end());
    }
    for (std::size_t sent = 0; sent < reply.size();) {
      const ssize_t n = ::send(c, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }

  void run() {
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) continue;
      ++count;
      serve_one(c);
      ::close(c);
    }
  }
};

LoopbackTsa::LoopbackTsa(int fail_with_status) : impl_(std::make_unique<Impl>()) {
  impl_->fail_status = fail_with_status;
  impl_->cert = std::move(x509_read_file(pki_path("tsa_cert")).at(0));
  for (auto& c : x509_read_file(pki_path("chain"))) sk_X509_push(impl_->chain.get(), c.release());
  BioPtr kb(BIO_new_file(pki_path("tsa_key").c_str(), "r"));
  impl_->key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!impl_->key) throw std::runtime_error("cannot read TSA key");
  impl_->fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(impl_->fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(impl_->fd, 16) != 0 ||
      ::getsockname(impl_->fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot listen on loopback");
  }
  impl_->port = ntohs(addr.sin_port);
  impl_->thread = std::thread([this] { impl_->run(); });
}

LoopbackTsa::~LoopbackTsa() {
  impl_->stop = true;
  impl_->thread.join();
  ::close(impl_->fd);
}

std::string LoopbackTsa::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + "/tsa";
}
int LoopbackTsa::requests() const {
  return impl_->count;
}

namespace {
// Whether something listens on the port, read from /proc: a probing connect would make
// `openssl ocsp` wait forever on the probe instead of serving the next client.
bool listening(int port) {
  std::array<char, 8> hex{};
  std::snprintf(hex.data(), hex.size(), ":%04X ", static_cast<unsigned>(port));
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    for (std::string line; std::getline(in, line);) {
      if (line.find(hex.data()) != std::string::npos && line.find(" 0A ") != std::string::npos)
        return true;
    }
  }
  return false;
}
}  // namespace

OcspResponder::OcspResponder() : port_(free_loopback_port()) {
  const std::vector<std::string> args{"openssl",    "ocsp",
                                      "-index",     pki_path("index"),
                                      "-CA",        pki_path("sub"),
                                      "-rsigner",   pki_path("ocsp_cert"),
                                      "-rkey",      pki_path("ocsp_key"),
                                      "-port",      std::to_string(port_),
                                      "-ignore_err"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "openssl", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start openssl ocsp");
  pid_ = pid;
  for (int i = 0; i < 100 && !listening(port_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void OcspResponder::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

OcspResponder::~OcspResponder() {
  stop();
}

}  // namespace kyso::test
