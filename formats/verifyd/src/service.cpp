#include "kyso/verifyd/service.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdlib>
#include <future>
#include <map>

#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/pdf_text.hpp"
#include "kyso/formats/verify.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/verifyd/report.hpp"
#include "multipart.hpp"
#include "page.hpp"

namespace kyso::verifyd {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A file in the private work directory that exists exactly as long as this object.
class TempFile {
 public:
  TempFile(const fs::path& dir, std::span<const std::uint8_t> data) {
    path_ = (dir / to_hex(random_bytes(16))).string();
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorCode::Internal, "cannot create a work file");
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n <= 0) {
        ::close(fd);
        ::unlink(path_.c_str());
        throw Error(ErrorCode::Internal, "cannot write a work file");
      }
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&&) = delete;
  TempFile& operator=(TempFile&&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

std::map<std::string, std::string, std::less<>> query_of(const std::string& target) {
  std::map<std::string, std::string, std::less<>> q;
  const auto mark = target.find('?');
  if (mark == std::string::npos) return q;
  std::string_view rest = std::string_view(target).substr(mark + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    q[std::string(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    rest = amp == std::string_view::npos ? "" : rest.substr(amp + 1);
  }
  return q;
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

unsigned status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadRequest:
      return 400;
    case ErrorCode::DocumentInvalid:
    case ErrorCode::DocumentEncrypted:
      return 422;
    case ErrorCode::DocumentTooLarge:
      return 413;
    case ErrorCode::Busy:
    case ErrorCode::Timeout:
      return 503;
    case ErrorCode::NotSupported:
      return 501;
    default:
      return 500;
  }
}

HttpResponse error_response(unsigned status, ErrorCode code, std::string detail) {
  HttpResponse r;
  r.status = status;
  r.body = json{{"error",
                 {{"code", std::string(code_name(code))},
                  {"vi", std::string(Error(code, "").message(Language::Vi))},
                  {"en", std::string(Error(code, "").message(Language::En))},
                  {"detail", std::move(detail)}}}}
               .dump();
  if (status == 503) r.headers.emplace_back("Retry-After", "5");
  return r;
}

HttpResponse error_response(const Error& e) {
  return error_response(status_of(e.code()), e.code(), e.detail());
}

// The page and its script and style: everything from this origin, nothing inline, nothing
// else (the page only ever talks to /v1/validate).
HttpResponse static_file(std::string_view body, const char* type) {
  HttpResponse r;
  r.content_type = type;
  r.body = std::string(body);
  r.headers = {{"Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; "
                "base-uri 'none'"},
               {"X-Content-Type-Options", "nosniff"},
               {"Referrer-Policy", "no-referrer"}};
  return r;
}

}  // namespace

struct Service::Impl {
  explicit Impl(firmware_config::VerifydConfig c)
      : config(std::move(c)), validators(static_cast<unsigned>(config.limits.max_concurrent)) {
    options.anchors = config.anchors;
    options.intermediates = config.intermediates;
    options.crl_files = config.crl_files;
    options.check_revocation = config.check_revocation;
    options.ocsp_url = config.ocsp_url;
    options.timeout = config.fetch_timeout;
    options.fetch_hosts = config.fetch_hosts;
    // With no host named, certificates' own URLs are never fetched: "none allowed" is said
    // with a host no URL can name.
    if (options.fetch_hosts.empty()) options.fetch_hosts = {"-"};
    for (const auto& a : config.anchors) {
      for (const auto& x : x509_read_file(a)) {
        anchor_subjects.push_back(parse_certificate(x509_to_der(x.get())).subject);
      }
    }
    // A private directory of this process for the uploads being validated.
    std::string base = config.work_dir.empty()
                           ? (std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp")
                           : config.work_dir.string();
    std::string tmpl = base + "/kyso-verifyd-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw Error(ErrorCode::ConfigInvalid, "cannot make a private directory in " + base);
    }
    work = tmpl;
    if (config.seal) open_seal(*config.seal);
  }

  ~Impl() {
    validators.join();
    std::error_code ec;
    fs::remove_all(work, ec);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;

  void open_seal(const firmware_config::VerifydSeal& s) {
    library = std::make_unique<pkcs11::Library>(pkcs11::ModuleConfig{{s.module}, false, false});
    for (const auto& m : library->modules()) {
      if (!m.loaded) throw Error(ErrorCode::ModuleLoadFailed, m.path + ": " + m.error);
    }
    for (const auto& token : library->tokens()) {
      if (token->info().label != s.token_label) continue;
      for (const auto& cred : token->credentials()) {
        if (cred.id() != s.credential_id) continue;
        auto signer = token->signer(cred);
        // Once, at start: the seal's PIN comes from its 0600 file (the profile checks the
        // mode), is wiped when `pin` goes, and a wrong one stops the service rather than being
        // tried again.
        switch (signer->auth_required()) {
          case AuthKind::None:
            break;
          case AuthKind::Pin: {
            if (s.pin_file.empty()) {
              throw Error(ErrorCode::LoginRequired,
                          "the seal's token needs a PIN: set seal.pin_file");
            }
            const Secret pin = Secret::from_file(s.pin_file);
            signer->authorize(UserAuth{&pin, nullptr}, {});
            break;
          }
          default:
            throw Error(ErrorCode::LoginRequired,
                        "the seal's token needs a PIN pad or a one-time code: a service cannot "
                        "use it");
        }
        seal = std::move(signer);
        seal_algorithm = *parse_sign_algorithm(s.algorithm);
        return;
      }
      throw Error(ErrorCode::CredentialNotFound,
                  "the seal's certificate is not on token " + s.token_label);
    }
    throw Error(ErrorCode::TokenNotFound, "no token labelled " + s.token_label);
  }

  // Runs `work` on a validator thread within the time limit. The slot is taken here and given
  // back when the work really ends, so validations that overran still count against the
  // concurrency limit until they finish.
  template <class Fn>
  auto limited(Fn work_fn) -> decltype(work_fn()) {
    using T = decltype(work_fn());
    if (running.fetch_add(1) >= config.limits.max_concurrent) {
      --running;
      throw Error(ErrorCode::Busy, "all " + std::to_string(config.limits.max_concurrent) +
                                       " validation slots are busy; try again shortly");
    }
    auto task = std::make_shared<std::packaged_task<T()>>([this, fn = std::move(work_fn)] {
      struct Release {
        std::atomic<std::size_t>& n;
        ~Release() { --n; }
      } release{running};
      return fn();
    });
    auto result = task->get_future();
    boost::asio::post(validators, [task] { (*task)(); });
    if (result.wait_for(config.limits.validation_timeout) != std::future_status::ready) {
      throw Error(ErrorCode::Timeout, "the validation took longer than " +
                                          std::to_string(config.limits.validation_timeout.count()) +
                                          " s");
    }
    return result.get();
  }

  json validate(std::span<const std::uint8_t> document, std::span<const std::uint8_t> content,
                std::string* sha_out) {
    if (document.empty()) throw Error(ErrorCode::BadRequest, "no document in the request");
    if (document.size() > config.limits.max_document_bytes) {
      throw Error(ErrorCode::DocumentTooLarge,
                  "the document is larger than " +
                      std::to_string(config.limits.max_document_bytes) + " bytes");
    }
    const std::string sha = to_hex(sha256(document));
    if (sha_out != nullptr) *sha_out = sha;
    if (running.load() >= config.limits.max_concurrent) {
      throw Error(ErrorCode::Busy, "all validation slots are busy; try again shortly");
    }
    const auto started = std::chrono::steady_clock::now();
    // The work owns its files: a validation that overruns the time limit keeps running after
    // the request has been answered, and removes them when it ends.
    auto doc = std::make_shared<TempFile>(work, document);
    std::shared_ptr<TempFile> detached;
    if (!content.empty()) detached = std::make_shared<TempFile>(work, content);
    const std::size_t size = document.size();
    return limited([this, doc, detached, sha, size, started] {
      formats::VerifyOptions o = options;
      if (detached) o.content = detached->path();
      ReportContext ctx;
      ctx.service_name = config.name;
      ctx.document_sha256 = sha;
      ctx.document_size = size;
      ctx.validation_time = std::chrono::system_clock::now();
      ctx.revocation_checked = config.check_revocation;
      ctx.trust_anchors = anchor_subjects;
      formats::VerifyReport rep;
      try {
        rep = formats::verify_file(doc->path(), o);
      } catch (const Error& e) {
        std::string detail = e.detail();
        for (auto p = detail.find(doc->path()); p != std::string::npos;
             p = detail.find(doc->path())) {
          detail.replace(p, doc->path().size(), "the document");
        }
        throw Error(e.code(), detail);
      } catch (const std::exception&) {
        throw Error(ErrorCode::DocumentInvalid, "the document cannot be read");
      }
      json j = report_json(rep, ctx);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
      // Only the hash and the verdict: never a name, an identifier or the content.
      spdlog::info("validated sha256={} kind={} bytes={} indication={} sub={} signatures={} ms={}",
                   sha, rep.kind, size, j["indication"].get<std::string>(),
                   j["subIndication"].is_string() ? j["subIndication"].get<std::string>() : "-",
                   rep.signatures.size(), ms);
      return j;
    });
  }

  Bytes sealed_report(const json& report, Language lang) {
    if (!seal) throw Error(ErrorCode::NotSupported, "this service has no seal for PDF reports");
    formats::TextPdfOptions t;
    t.title = lang == Language::Vi ? "Biên bản kiểm tra chữ ký số" : "Signature validation report";
    const Bytes pdf = formats::text_pdf(report_lines(report, lang), t);
    formats::PdfSignOptions o;
    o.algorithm = seal_algorithm;
    o.field_name = "KysoVerifydSeal";
    o.reason = lang == Language::Vi ? "Biên bản kiểm tra chữ ký số" : "Signature validation report";
    return formats::sign_pdf(*seal, pdf, o);
  }

  HttpResponse post_validate(HttpRequest& req) {
    const auto query = query_of(req.target);
    const bool pdf = query.contains("report") && query.at("report") == "pdf";
    if (query.contains("report") && !pdf && query.at("report") != "json") {
      throw Error(ErrorCode::BadRequest, "report must be json or pdf");
    }
    const Language lang =
        query.contains("lang") && query.at("lang") == "en" ? Language::En : Language::Vi;
    std::span<const std::uint8_t> document = bytes_of(req.body);
    std::span<const std::uint8_t> content;
    if (req.content_type.starts_with("multipart/form-data")) {
      const auto parts = parse_multipart(req.content_type, req.body);
      for (const auto& p : parts) {
        if (p.name == "document" || p.name == "file" || p.name == "signature") {
          document = bytes_of(p.body);
        } else if (p.name == "content") {
          content = bytes_of(p.body);
        } else {
          throw Error(ErrorCode::BadRequest,
                      "unknown form field " + p.name + " (document, signature or content)");
        }
      }
      if (parts.empty()) throw Error(ErrorCode::BadRequest, "no form field in the request");
    }
    std::string sha;
    json report;
    try {
      report = validate(document, content, &sha);
    } catch (const Error& e) {
      spdlog::info("refused sha256={} code={}", sha.empty() ? "-" : sha, e.name());
      throw;
    }
    HttpResponse r;
    if (pdf) {
      const Bytes sealed = limited([this, report, lang] { return sealed_report(report, lang); });
      r.content_type = "application/pdf";
      r.body.assign(sealed.begin(), sealed.end());
      r.headers.emplace_back("Content-Disposition",
                             "attachment; filename=\"kyso-validation-report.pdf\"");
    } else {
      r.body = report.dump();
    }
    return r;
  }

  HttpResponse route(HttpRequest& req) {
    const std::string path = req.target.substr(0, req.target.find('?'));
    if (path == "/v1/validate") {
      if (req.method != "POST") {
        auto r = error_response(405, ErrorCode::BadRequest, "use POST");
        r.headers.emplace_back("Allow", "POST");
        return r;
      }
      return post_validate(req);
    }
    if (req.method != "GET" && req.method != "HEAD") {
      return error_response(405, ErrorCode::BadRequest, "use GET");
    }
    if (path == "/") return static_file(page_html(), "text/html; charset=utf-8");
    if (path == "/app.js") return static_file(page_js(), "text/javascript; charset=utf-8");
    if (path == "/app.css") return static_file(page_css(), "text/css; charset=utf-8");
    if (path == "/v1/schema/validation-report.json") {
      return static_file(report_schema(), "application/schema+json");
    }
    if (path == "/health") {
      HttpResponse r;
      r.body = json{{"status", "ok"}, {"seal", seal != nullptr}}.dump();
      return r;
    }
    return error_response(404, ErrorCode::BadRequest, "no such path: " + path);
  }

  firmware_config::VerifydConfig config;
  formats::VerifyOptions options;
  std::vector<std::string> anchor_subjects;
  fs::path work;
  std::unique_ptr<pkcs11::Library> library;
  std::shared_ptr<Signer> seal;
  SignAlgorithm seal_algorithm = SignAlgorithm::RsaPssSha256;
  boost::asio::thread_pool validators;
  std::atomic<std::size_t> running{0};
};

Service::Service(firmware_config::VerifydConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}

Service::~Service() = default;

HttpResponse Service::handle(HttpRequest& request) noexcept {
  try {
    return impl_->route(request);
  } catch (const Error& e) {
    return error_response(e);
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return error_response(500, ErrorCode::Internal, "internal error");
  }
}

nlohmann::json Service::validate(std::span<const std::uint8_t> document,
                                 std::span<const std::uint8_t> content) {
  return impl_->validate(document, content, nullptr);
}

const firmware_config::VerifydConfig& Service::config() const noexcept {
  return impl_->config;
}

namespace {

HttpServerOptions server_options(const firmware_config::VerifydConfig& c) {
  HttpServerOptions o;
  o.name = "kyso-verifyd";
  o.listen_address = c.listen_address;
  o.port = c.port;
  o.tls_cert_file = c.tls_cert_file;
  o.tls_key_file = c.tls_key_file;
  // Room for a detached CMS's content beside it and the multipart framing.
  o.max_body_bytes = 2 * c.limits.max_document_bytes + 64 * 1024;
  o.request_timeout = c.limits.request_timeout;
  o.idle_timeout = c.limits.idle_timeout;
  o.max_connections = c.limits.max_connections;
  o.io_threads = c.limits.io_threads;
  // Workers wait for validators (which the service limits itself) and serve the page; beyond
  // this many requests at once the server answers 503 without queueing.
  o.workers = static_cast<unsigned>(c.limits.max_concurrent) + 2;
  o.max_in_flight = 4 * c.limits.max_concurrent + 16;
  return o;
}

}  // namespace

Server::Server(firmware_config::VerifydConfig config)
    : service_(config),
      http_(server_options(config), {[this](HttpRequest& r) { return service_.handle(r); },
                                     [](unsigned status, const std::string& why) {
                                       return error_response(
                                           status,
                                           status == 413   ? ErrorCode::DocumentTooLarge
                                           : status == 503 ? ErrorCode::Busy
                                                           : ErrorCode::BadRequest,
                                           why);
                                     }}) {}

Server::~Server() {
  stop();
}

void Server::start() {
  http_.start();
}

void Server::stop() noexcept {
  http_.stop();
}

std::uint16_t Server::port() const noexcept {
  return http_.port();
}

}  // namespace kyso::verifyd
