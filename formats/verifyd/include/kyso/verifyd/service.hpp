#pragma once
/// @file
/// kyso-verifyd: signature validation as an HTTP(S) service for anyone who receives a digital
/// transcript (a school, a university, a parent). Built on formats' verification (the same code
/// as `kyso verify`) and the shared server skeleton (kyso/core/http_server.hpp).
///
///   GET  /                  the page (Vietnamese, English switch): drop a file, read the report
///   POST /v1/validate       a PDF, an XML or a CMS (multipart with its detached content) ->
///                           the JSON report (docs/schemas/validation-report.json)
///   POST /v1/validate?report=pdf[&lang=en]   the report as a PDF sealed by the service
///   GET  /health            for load balancers (the appliance's path too)
///
/// Documents live in a private directory only while they are validated; logs carry the
/// document's SHA-256 and the verdict, nothing else of it.

#include <cstdint>
#include <memory>
#include <span>

#include <nlohmann/json.hpp>

#include "kyso/core/http_server.hpp"
#include "kyso/firmware_config/verifyd_config.hpp"

namespace kyso::verifyd {

class Service {
 public:
  /// Reads the anchors, opens the seal's token (when configured) and makes the private work
  /// directory. Throws Error (ConfigInvalid, TokenNotFound, CredentialNotFound, ...).
  explicit Service(firmware_config::VerifydConfig config);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  Service(Service&&) = delete;
  Service& operator=(Service&&) = delete;

  /// One HTTP request (on a server worker). Never throws.
  HttpResponse handle(HttpRequest& request) noexcept;

  /// Validates a document in this process, as POST /v1/validate does (limits included).
  /// `content` is a detached CMS's signed content (empty otherwise). Throws Error.
  nlohmann::json validate(std::span<const std::uint8_t> document,
                          std::span<const std::uint8_t> content = {});

  [[nodiscard]] const firmware_config::VerifydConfig& config() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The service behind its server: kyso-verifyd's main runs this.
class Server {
 public:
  explicit Server(firmware_config::VerifydConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;

  void start();
  void stop() noexcept;
  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] Service& service() noexcept { return service_; }

 private:
  Service service_;
  HttpServer http_;
};

}  // namespace kyso::verifyd
