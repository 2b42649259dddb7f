#include "kyso/firmware_config/verifyd_config.hpp"

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/signer.hpp"
#include "toml_reader.hpp"

namespace kyso::firmware_config {
namespace {

using detail::Section;

void read_limits(Section& l, VerifydLimits& L) {
  auto size = [&](std::string_view key, std::size_t& out, std::int64_t min, std::int64_t max) {
    if (auto v = l.integer(key, min, max)) out = static_cast<std::size_t>(*v);
  };
  auto seconds = [&](std::string_view key, std::chrono::seconds& out, std::int64_t min,
                     std::int64_t max) {
    if (auto v = l.integer(key, min, max)) out = std::chrono::seconds(*v);
  };
  size("max_document_bytes", L.max_document_bytes, 1024, 1024LL * 1024 * 1024);
  seconds("validation_timeout_seconds", L.validation_timeout, 1, 3600);
  size("max_concurrent", L.max_concurrent, 1, 1024);
  seconds("request_timeout_seconds", L.request_timeout, 1, 3600);
  seconds("idle_timeout_seconds", L.idle_timeout, 1, 3600);
  size("max_connections", L.max_connections, 1, 100000);
  if (auto v = l.integer("io_threads", 1, 256)) L.io_threads = static_cast<unsigned>(*v);
  l.finish();
}

}  // namespace

VerifydConfig load_verifyd_config(const std::filesystem::path& file) {
  const toml::table root_table = detail::parse_toml_file(file);
  Section root(file.string(), root_table, "");
  VerifydConfig c;

  auto server = root.table("server");
  if (!server) root.fail("server", "section [server] is required", "thiếu mục [server]");
  c.name = server->string_or("name", c.name);
  detail::read_listen(*server, "listen", c.listen_address, c.port);
  if (auto w = server->file_path("work_dir", true)) c.work_dir = *w;
  server->finish();

  if (auto tls = root.table("tls")) {
    c.tls_cert_file = tls->file_path("cert", true).value_or("");
    if (c.tls_cert_file.empty()) tls->fail("cert", "is required", "bắt buộc phải có");
    c.tls_key_file = tls->file_path("key", true).value_or("");
    if (c.tls_key_file.empty()) tls->fail("key", "is required", "bắt buộc phải có");
    detail::check_private(*tls, "key", c.tls_key_file);
    tls->finish();
  } else if (c.listen_address != "127.0.0.1" && c.listen_address != "::1") {
    root.fail("tls",
              "section [tls] is required unless the service listens on loopback behind a "
              "TLS-terminating proxy",
              "thiếu mục [tls]: chỉ được bỏ khi dịch vụ nghe trên loopback sau một proxy TLS");
  }

  auto trust = root.table("trust");
  if (!trust) {
    root.fail("trust", "section [trust] is required (the trust anchors: NEAC, VGCA roots)",
              "thiếu mục [trust] (các chứng thư gốc tin cậy: NEAC, VGCA)");
  }
  c.anchors = trust->file_paths("anchors", true).value_or(std::vector<std::string>{});
  if (c.anchors.empty()) {
    trust->fail("anchors", "at least one trust anchor is required",
                "cần ít nhất một chứng thư gốc tin cậy");
  }
  c.intermediates = trust->file_paths("intermediates", true).value_or(std::vector<std::string>{});
  c.crl_files = trust->file_paths("crl_files", true).value_or(std::vector<std::string>{});
  c.check_revocation = trust->boolean("check_revocation").value_or(true);
  if (auto url = trust->string("ocsp_url")) {
    if (!detail::valid_http_url(*url, false)) {
      trust->fail("ocsp_url", "must be an http(s) URL", "phải là một URL http(s)");
    }
    c.ocsp_url = *url;
  }
  c.fetch_hosts = trust->strings("fetch_hosts").value_or(std::vector<std::string>{});
  if (c.fetch_hosts.empty() && c.check_revocation && c.ocsp_url.empty() && c.crl_files.empty()) {
    trust->fail("fetch_hosts",
                "name the OCSP/CRL hosts the service may contact (or give ocsp_url or "
                "crl_files): it never fetches from hosts a certificate chooses",
                "hãy ghi các máy chủ OCSP/CRL dịch vụ được phép kết nối (hoặc ocsp_url, "
                "crl_files): dịch vụ không kết nối tới máy chủ do chứng thư tự chỉ định");
  }
  if (auto t = trust->integer("fetch_timeout_seconds", 1, 120))
    c.fetch_timeout = std::chrono::seconds(*t);
  trust->finish();

  if (auto seal = root.table("seal")) {
    VerifydSeal s;
    s.module = seal->file_path("module", true).value_or("");
    if (s.module.empty()) seal->fail("module", "is required", "bắt buộc phải có");
    s.token_label = seal->required_string("token_label");
    const auto cert = seal->file_path("certificate", true);
    if (!cert)
      seal->fail("certificate", "is required (the seal's certificate)",
                 "bắt buộc phải có (chứng thư của con dấu)");
    try {
      const auto certs = x509_read_file(*cert);
      if (certs.empty()) throw Error(ErrorCode::CertInvalid, "no certificate");
      s.credential_id = to_hex(sha256(x509_to_der(certs.front().get())));
    } catch (const Error&) {
      seal->fail("certificate", *cert + " is not a certificate (PEM or DER)",
                 *cert + " không phải là chứng thư số (PEM hoặc DER)");
    }
    if (auto pin = seal->file_path("pin_file", true)) {
      detail::check_private(*seal, "pin_file", *pin);
      s.pin_file = *pin;
    }
    s.algorithm = seal->string_or("algorithm", s.algorithm);
    if (!parse_sign_algorithm(s.algorithm)) {
      seal->fail("algorithm", "unknown algorithm (e.g. rsa-pss-sha256, rsa-sha256, ecdsa-sha256)",
                 "thuật toán không hợp lệ (ví dụ rsa-pss-sha256, rsa-sha256, ecdsa-sha256)");
    }
    seal->finish();
    c.seal = s;
  }

  if (auto l = root.table("limits")) read_limits(*l, c.limits);
  root.finish();
  return c;
}

}  // namespace kyso::firmware_config
