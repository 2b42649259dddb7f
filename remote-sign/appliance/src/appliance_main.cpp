// kyso-appliance: the CSC v2 signing server (see docs/remote-signing.md).
//
//   kyso-appliance --config FILE [--port-file FILE]   serve until SIGINT / SIGTERM
//   kyso-appliance check-config --config FILE         validate the TOML file and exit
//   kyso-appliance hash-password [--cost LOG2N]       hash a password read from stdin
//   kyso-appliance verify-audit --db FILE|URL         check the audit log's hash chain
//   kyso-appliance migrate --db FILE|URL [--grant ROLE]  bring the state schema up to date
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/security.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/appliance_config.hpp"
#include "kyso/firmware_config/service_args.hpp"
#include "kyso/firmware_config/service_main.hpp"
#include "kyso_revision.hpp"

namespace {

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
    CLI::App app{
        "kyso-appliance: ký số từ xa qua CSC API v2 trên HSM / remote signing (Cloud Signature "
        "Consortium API v2) over a PKCS#11 HSM",
        "kyso-appliance"};
    app.set_version_flag("--version", kyso::version_line("kyso-appliance", KYSO_GIT_REVISION));
    app.fallthrough();  // `check-config --config FILE` as well as `--config FILE check-config`
    std::string config;
    std::string port_file;
    std::string db;
    std::string grant;
    unsigned cost = 15;
    app.add_option("--config", config, "kyso-appliance.toml (docs/configuration.md)")
        ->type_name("FILE");
    app.add_option("--port-file", port_file, "Write the bound port here once listening")
        ->type_name("FILE");
    auto* check = app.add_subcommand("check-config", "Validate the configuration and exit");
    auto* hash = app.add_subcommand("hash-password", "Hash a password read from stdin");
    hash->add_option("--cost", cost, "scrypt cost, log2 N")
        ->type_name("LOG2N")
        ->capture_default_str();
    auto* verify = app.add_subcommand("verify-audit", "Check the audit log's hash chain");
    verify->add_option("--db", db, "The state database: SQLite file or postgresql:// URL")
        ->type_name("FILE|URL")
        ->required();
    auto* migrate = app.add_subcommand("migrate", "Bring the state schema up to date");
    migrate->add_option("--db", db, "The state database: SQLite file or postgresql:// URL")
        ->type_name("FILE|URL")
        ->required();
    migrate->add_option("--grant", grant, "The nodes' PostgreSQL login, given what a node needs")
        ->type_name("ROLE");
    app.require_subcommand(0, 1);
    // Serving and check-config need the configuration; the other commands do not read it.
    // Checked in a callback, after unknown arguments were refused, so that a mistyped option is
    // named rather than reported as a missing --config.
    app.callback([&] {
      if (config.empty() && app.get_subcommands().empty()) throw CLI::RequiredError("--config");
      if (config.empty() && check->parsed()) throw CLI::RequiredError("--config");
    });
    if (const auto rc = kyso::firmware_config::parse_service_args(app, argc, argv)) return *rc;
    if (hash->parsed()) return hash_password_cmd(cost);
    if (migrate->parsed()) {
      const int version = kyso::appliance::migrate_state_store(db, grant);
      std::printf("state schema at version %d\n", version);
      return 0;
    }
    if (verify->parsed()) {
      const auto store = kyso::appliance::open_state_store(db);
      if (auto broken = store->verify_audit_chain()) {
        std::printf("audit log BROKEN at row %lld\n", static_cast<long long>(*broken));
        return 1;
      }
      std::printf("audit log intact: %zu rows\n", store->audit_log().size());
      return 0;
    }
    if (check->parsed()) {
      const auto c = kyso::firmware_config::load_appliance_config(config);
      std::printf("%s: OK (%zu users, %zu OAuth clients, listening on %s:%u)\n", config.c_str(),
                  c.users.size(), c.clients.size(), c.listen_address.c_str(), c.port);
      return 0;
    }
    return serve(config, port_file);
  });
}
