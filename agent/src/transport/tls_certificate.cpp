#include "tls_certificate.hpp"

#include <spdlog/spdlog.h>

#include <boost/system/error_code.hpp>
#include <utility>

#include "kyso/core/error.hpp"

namespace kyso::agent::transport {

namespace net = boost::asio;

bool TlsCertificate::Stamp::operator==(const Stamp& o) const noexcept {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec;
}

TlsCertificate::TlsCertificate(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {
  loaded_ = tried_ = stamps();
  std::string error;
  context_ = load(error);
  if (!context_) {
    throw Error(ErrorCode::ConfigInvalid,
                "TLS certificate/key (" + cert_file_ + ", " + key_file_ + "): " + error);
  }
}

std::shared_ptr<net::ssl::context> TlsCertificate::load(std::string& error) const {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_file_, ec);
  if (!ec) ctx->use_private_key_file(key_file_, net::ssl::context::pem, ec);
  // A certificate and a key of two different renewals (one file replaced, not yet the other).
  if (!ec && ::SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    error = "the key does not match the certificate";
    return nullptr;
  }
  if (ec) {
    error = ec.message();
    return nullptr;
  }
  return ctx;
}

std::shared_ptr<net::ssl::context> TlsCertificate::current() {
  const Stamps now = stamps();
  std::lock_guard lock(mutex_);
  if (now == loaded_ || now == tried_) return context_;
  tried_ = now;
  std::string error;
  if (auto fresh = load(error)) {
    context_ = std::move(fresh);
    loaded_ = now;
    spdlog::info("wss certificate reloaded from {}", cert_file_);
  } else {
    spdlog::warn(
        "wss certificate {} changed but cannot be used ({}): still serving the previous one",
        cert_file_, error);
  }
  return context_;
}

}  // namespace kyso::agent::transport
