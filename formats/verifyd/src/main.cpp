// kyso-verifyd: the signature verification service (see docs/verifyd.md).
//
//   kyso-verifyd --config FILE [--port-file FILE]   serve until SIGINT / SIGTERM
//   kyso-verifyd check-config --config FILE         validate the TOML file and exit
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "kyso/core/version.hpp"
#include "kyso/firmware_config/service_args.hpp"
#include "kyso/firmware_config/service_main.hpp"
#include "kyso/firmware_config/verifyd_config.hpp"
#include "kyso/verifyd/service.hpp"
#include "kyso_revision.hpp"

namespace {

int serve(const std::string& config, const std::string& port_file) {
  return kyso::firmware_config::serve_made_until_signal(
      "kyso-verifyd",
      [&] {
        return std::make_unique<kyso::verifyd::Server>(
            kyso::firmware_config::load_verifyd_config(config));
      },
      port_file);
}

}  // namespace

int main(int argc, char** argv) {
  // The journal adds its own timestamps; one line per validation: hash and verdict only.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("kyso-verifyd"));
  spdlog::set_pattern("kyso-verifyd: %l: %v");
  return kyso::firmware_config::run_service_main("kyso-verifyd", [&] {
    CLI::App app{
        "kyso-verifyd: dịch vụ kiểm tra chữ ký số của học bạ (trang web và API) / signature "
        "verification service for digital transcripts (a page and an API)",
        "kyso-verifyd"};
    app.set_version_flag("--version", kyso::version_line("kyso-verifyd", KYSO_GIT_REVISION));
    app.fallthrough();  // `check-config --config FILE` as well as `--config FILE check-config`
    std::string config;
    std::string port_file;
    app.add_option("--config", config, "kyso-verifyd.toml (docs/verifyd.md)")->type_name("FILE");
    app.add_option("--port-file", port_file, "Write the bound port here once listening")
        ->type_name("FILE");
    auto* check = app.add_subcommand("check-config", "Validate the configuration and exit");
    app.require_subcommand(0, 1);
    // Checked after the rest (a callback runs once unknown arguments were refused), so that a
    // mistyped option is named rather than reported as a missing --config.
    app.callback([&] {
      if (config.empty()) throw CLI::RequiredError("--config");
    });
    if (const auto rc = kyso::firmware_config::parse_service_args(app, argc, argv)) return *rc;
    if (check->parsed()) {
      const auto c = kyso::firmware_config::load_verifyd_config(config);
      std::printf("%s: OK (%zu trust anchors, %s on %s:%u, seal %s)\n", config.c_str(),
                  c.anchors.size(), c.tls_cert_file.empty() ? "HTTP" : "HTTPS",
                  c.listen_address.c_str(), c.port, c.seal ? "configured" : "none");
      return 0;
    }
    return serve(config, port_file);
  });
}
