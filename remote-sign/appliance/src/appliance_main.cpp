// kyso-appliance: the CSC v2 signing server (see docs/remote-signing.md).
//
//   kyso-appliance --config FILE [--port-file FILE]   serve until SIGINT / SIGTERM
//   kyso-appliance check-config --config FILE         validate the TOML file and exit
//   kyso-appliance hash-password [--cost LOG2N]       hash a password read from stdin
//   kyso-appliance verify-audit --db FILE|URL         check the audit log's hash chain
//   kyso-appliance migrate --db FILE|URL [--grant ROLE]  bring the state schema up to date
#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/security.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/appliance_config.hpp"
#include "kyso/firmware_config/service_main.hpp"
#include "kyso_revision.hpp"

namespace {

constexpr const char* kUsage =
    "usage: kyso-appliance --config FILE [--port-file FILE]\n"
    "       kyso-appliance check-config --config FILE\n"
    "       kyso-appliance hash-password [--cost LOG2N]   (password on stdin)\n"
    "       kyso-appliance verify-audit --db FILE|URL\n"
    "       kyso-appliance migrate --db FILE|URL [--grant ROLE]\n"
    "       kyso-appliance --help | --version\n";

// A mistake in the arguments: the usage on stderr, exit 2.
int usage() {
  std::fputs(kUsage, stderr);
  return 2;
}

int help() {
  std::fputs(
      "kyso-appliance: ký số từ xa qua CSC API v2 trên HSM / remote signing (Cloud Signature "
      "Consortium API v2) over a PKCS#11 HSM\n\n",
      stdout);
  std::fputs(kUsage, stdout);
  std::fputs(
      "\n  --config FILE     kyso-appliance.toml (docs/configuration.md)\n"
      "  --port-file FILE  write the bound port here once listening\n"
      "  --db FILE|URL     the state database (SQLite file or postgresql:// URL) that\n"
      "                    verify-audit checks or migrate brings up to date\n"
      "  --grant ROLE      migrate: the nodes' PostgreSQL login, given what a node needs\n"
      "  --cost LOG2N      scrypt cost for hash-password (default 15)\n",
      stdout);
  return 0;
}

int hash_password_cmd(unsigned cost) {
  kyso::Secret pw;
  if (isatty(STDIN_FILENO) != 0) {
    pw = kyso::Secret::from_terminal("Password: ");
  } else {
    int c = 0;
    while ((c = std::getchar()) != EOF && c != '\n') pw.push_back(static_cast<char>(c));
  }
  if (pw.empty()) {
    std::fprintf(stderr, "kyso-appliance: empty password\n");
    return 1;
  }
  std::cout << kyso::appliance::hash_password(pw, cost) << "\n";
  return 0;
}

int serve(const std::string& config, const std::string& port_file) {
  return kyso::firmware_config::serve_made_until_signal(
      "kyso-appliance",
      [&] {
        return std::make_unique<kyso::appliance::Appliance>(
            kyso::firmware_config::load_appliance_config(config));
      },
      port_file);
}

}  // namespace

int main(int argc, char** argv) {
  return kyso::firmware_config::run_service_main("kyso-appliance", [&] {
    std::string config;
    std::string port_file;
    std::string db;
    std::string grant;
    unsigned cost = 15;
    std::string command = "serve";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw kyso::Error(kyso::ErrorCode::BadRequest, a + " needs a value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") return help();
      if (a == "--version") {
        std::printf("%s\n", kyso::version_line("kyso-appliance", KYSO_GIT_REVISION).c_str());
        return 0;
      }
      if (a == "hash-password" || a == "verify-audit" || a == "check-config" || a == "migrate") {
        command = a;
      } else if (a == "--config") {
        config = next();
      } else if (a == "--port-file") {
        port_file = next();
      } else if (a == "--db") {
        db = next();
      } else if (a == "--grant") {
        grant = next();
      } else if (a == "--cost") {
        cost = static_cast<unsigned>(std::stoul(next()));
      } else {
        return usage();
      }
    }
    if (command == "hash-password") return hash_password_cmd(cost);
    if (command == "migrate") {
      if (db.empty()) return usage();
      const int version = kyso::appliance::migrate_state_store(db, grant);
      std::printf("state schema at version %d\n", version);
      return 0;
    }
    if (command == "verify-audit") {
      if (db.empty()) return usage();
      const auto store = kyso::appliance::open_state_store(db);
      if (auto broken = store->verify_audit_chain()) {
        std::printf("audit log BROKEN at row %lld\n", static_cast<long long>(*broken));
        return 1;
      }
      std::printf("audit log intact: %zu rows\n", store->audit_log().size());
      return 0;
    }
    if (config.empty()) return usage();
    if (command == "check-config") {
      const auto c = kyso::firmware_config::load_appliance_config(config);
      std::printf("%s: OK (%zu users, %zu OAuth clients, listening on %s:%u)\n", config.c_str(),
                  c.users.size(), c.clients.size(), c.listen_address.c_str(), c.port);
      return 0;
    }
    return serve(config, port_file);
  });
}
