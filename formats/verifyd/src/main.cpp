// kyso-verifyd: the signature verification service (see docs/verifyd.md).
//
//   kyso-verifyd --config FILE [--port-file FILE]   serve until SIGINT / SIGTERM
//   kyso-verifyd check-config --config FILE         validate the TOML file and exit
#include <cstdio>
#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "kyso/core/error.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/service_main.hpp"
#include "kyso/firmware_config/verifyd_config.hpp"
#include "kyso/verifyd/service.hpp"
#include "kyso_revision.hpp"

namespace {

constexpr const char* kUsage =
    "usage: kyso-verifyd --config FILE [--port-file FILE]\n"
    "       kyso-verifyd check-config --config FILE\n"
    "       kyso-verifyd --help | --version\n";

// A mistake in the arguments: the usage on stderr, exit 2.
int usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

int help() {
  std::fputs(
      "kyso-verifyd: dịch vụ kiểm tra chữ ký số của học bạ (trang web và API) / signature "
      "verification service for digital transcripts (a page and an API)\n\n",
      stdout);
  std::fputs(kUsage, stdout);
  std::fputs(
      "\n  --config FILE     kyso-verifyd.toml (docs/verifyd.md)\n"
      "  --port-file FILE  write the bound port here once listening\n",
      stdout);
  return 0;
}

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
    std::string config;
    std::string port_file;
    std::string command = "serve";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw kyso::Error(kyso::ErrorCode::BadRequest, a + " needs a value");
        return argv[++i];
      };
      if (a == "check-config") {
        command = a;
      } else if (a == "--config") {
        config = next();
      } else if (a == "--port-file") {
        port_file = next();
      } else if (a == "--help" || a == "-h") {
        return help();
      } else if (a == "--version") {
        std::printf("%s\n", kyso::version_line("kyso-verifyd", KYSO_GIT_REVISION).c_str());
        return 0;
      } else {
        return usage();
      }
    }
    if (config.empty()) return usage();
    if (command == "check-config") {
      const auto c = kyso::firmware_config::load_verifyd_config(config);
      std::printf("%s: OK (%zu trust anchors, %s on %s:%u, seal %s)\n", config.c_str(),
                  c.anchors.size(), c.tls_cert_file.empty() ? "HTTP" : "HTTPS",
                  c.listen_address.c_str(), c.port, c.seal ? "configured" : "none");
      return 0;
    }
    return serve(config, port_file);
  });
}
