// kyso-agent: the signing agent web transcript systems talk to over ws://127.0.0.1:19587.
// A thin main: options -> AgentConfig -> Service -> Server, until SIGINT/SIGTERM (Ctrl+C,
// logoff or shutdown on Windows).

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "kyso/agent/server.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso_revision.hpp"

int main(int argc, char** argv) {
  // PINs pass through this process's memory: no core dump of it, and no ptrace attach or
  // /proc/<pid>/mem read by other processes of the user (not dumpable). Before anything else.
  if (!kyso::platform::keep_memory_private()) {
    std::cerr << "kyso-agent: prctl(PR_SET_DUMPABLE) failed\n";
    return 1;
  }
  // No cap on glibc's allocator arenas here (platform::limit_heap_arenas, which the appliance
  // and kyso-verifyd use): a batch signs on two token sessions at once, and SoftHSM and OpenSSL
  // allocate a few dozen blocks per signature, so the two call-pool threads that share one of
  // two arenas wait on its lock (5 agent starts in 6) and a signature costs the 2 cores about
  // twice what raw C_Sign does (issue 11). The idle agent's malloc_trim (server.cpp) still
  // gives back what a burst of batches freed.
  CLI::App app{"kyso-agent: ký số học bạ từ trình duyệt / signing agent for web transcript systems",
               "kyso-agent"};
  app.set_version_flag("--version", kyso::version_line("kyso-agent", KYSO_GIT_REVISION));
  std::string config_file;
  std::vector<std::string> origins;
  std::vector<std::string> modules;
  std::string pinentry;
  std::string state_dir;
  std::string log_level = "info";
  int port = -1;
  std::size_t max_connections = 0;
  bool no_system_modules = false;
  app.add_option("--config", config_file, "kyso-agent.toml (docs/configuration.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--port", port, "Port (default 19587, fallbacks 19588, 19589; 0: any free port)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--max-connections", max_connections,
                 "Open WebSocket connections of allow-listed and paired origins at most (16; other "
                 "origins have their own 4, 2 per origin)");
  app.add_option("--allow-origin", origins,
                 "Allow-listed origin, e.g. https://hocba.example.edu.vn");
  app.add_option("--module", modules, "Extra PKCS#11 module (repeatable)");
  app.add_flag("--no-system-modules", no_system_modules, "Only the --module paths");
  app.add_option("--pinentry", pinentry, "pinentry program (default: pinentry)");
  app.add_option("--state-dir", state_dir, "Pairings and audit log (default ~/.local/share/kyso)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    kyso::firmware_config::AgentConfig cfg;
    if (!config_file.empty()) cfg = kyso::firmware_config::load_agent_config(config_file);
    if (port >= 0) cfg.port = static_cast<std::uint16_t>(port);
    for (auto& o : origins) cfg.allowed_origins.push_back(o);
    for (auto& m : modules) cfg.pkcs11_modules.push_back(m);
    if (no_system_modules) cfg.system_modules = false;
    if (max_connections > 0) cfg.limits.max_connections = max_connections;
    if (!pinentry.empty()) cfg.pinentry = pinentry;
    // UTF-8 text to a path (a Vietnamese user name on Windows: platform.hpp).
    if (!state_dir.empty()) cfg.state_dir = kyso::platform::utf8_path(state_dir);

    // SIGINT/SIGTERM are taken by wait() below, in this thread only; SIGPIPE is ignored.
    kyso::platform::StopRequests stop_requests(true);

    auto service = std::make_shared<kyso::agent::Service>(std::move(cfg));
    kyso::agent::Server server(service);
    server.start();
    // A line on stdout that scripts (tests, the benchmark) wait for.
    std::cout << "kyso-agent listening on " << (service->config().tls ? "wss" : "ws")
              << "://127.0.0.1:" << server.port() << "/" << std::endl;
    spdlog::info("{}: stopping", stop_requests.wait());
    server.stop();
  } catch (const kyso::Error& e) {
    std::cerr << "kyso-agent: " << e.message(kyso::Language::Vi) << "\n  " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kyso-agent: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
