#pragma once
// kyso-verifyd under test: the service in this process on a free loopback port with a profile
// made in code (the demo PKI's root as the only anchor), and curl as its client.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "format_support.hpp"
#include "kyso/firmware_config/verifyd_config.hpp"
#include "kyso/verifyd/service.hpp"

namespace kyso::test {

/// The demo PKI's profile: its root as the anchor, OCSP at `ocsp_url` (empty: none), the
/// issuing CA's CRL as a local file, nothing fetched from the certificates' own URLs.
firmware_config::VerifydConfig demo_profile(const std::string& ocsp_url,
                                            const std::string& work_dir);

/// The fixture's seal credential as the service's seal (for ?report=pdf).
void add_demo_seal(firmware_config::VerifydConfig& c);

class RunningVerifyd {
 public:
  explicit RunningVerifyd(firmware_config::VerifydConfig c);
  [[nodiscard]] std::string url(const std::string& path = "/") const;
  kyso::verifyd::Server& server() { return *server_; }

 private:
  std::unique_ptr<kyso::verifyd::Server> server_;
};

struct Answer {
  int status = 0;  ///< HTTP status (0: no answer)
  std::string body;
  [[nodiscard]] nlohmann::json json() const { return nlohmann::json::parse(body); }
};

/// curl with `args`; `input` (a shell command) is piped into it when given.
Answer curl(const std::string& args, const std::string& input = "");
/// curl: POST the file's bytes (`extra` adds curl arguments).
Answer post_file(const std::string& url, const std::string& file, const std::string& extra = "");
Answer get(const std::string& url);

/// Checks `report` against docs/schemas/validation-report.json (python3-jsonschema); returns
/// the validator's complaint, empty when valid.
std::string schema_errors(const nlohmann::json& report);

}  // namespace kyso::test
