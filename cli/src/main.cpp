// kyso: list tokens and credentials, sign a hash, provision tokens, verify signatures, explain
// what stands between this PC and signing (doctor), and manage the agent's pairings and audit log.

#include <CLI/CLI.hpp>

#include <iostream>

#include "context.hpp"
#include "kyso/core/version.hpp"
#include "kyso_revision.hpp"

int main(int argc, char** argv) {
  kyso::cli::Context ctx;
  CLI::App app{
      "Kyso: ký số học bạ bằng token USB và HSM / signing for Vietnam's digital school transcripts",
      "kyso"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the subcommand
  app.add_option("--module", ctx.modules, "PKCS#11 module to load (repeatable)");
  app.add_flag("--no-system-modules", ctx.no_system_modules,
               "Only load --module paths, not p11-kit's or the known-token table's");
  app.add_option("--lang", ctx.lang, "Language of messages: vi (default) or en")
      ->check(CLI::IsMember({"vi", "en"}));
  app.set_version_flag("--version", kyso::version_line("kyso", KYSO_GIT_REVISION));
  kyso::cli::add_agent_commands(app, ctx);
  kyso::cli::add_doctor_command(app, ctx);
  kyso::cli::add_provision_commands(app, ctx);
  kyso::cli::add_token_commands(app, ctx);
  kyso::cli::add_verify(app, ctx);
  kyso::cli::add_extend(app, ctx);
  kyso::cli::add_prepare_embed(app, ctx);
  kyso::cli::add_sign_command(app, ctx);
  kyso::cli::add_browser_policy_command(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kyso::Error& e) {
    return kyso::cli::report_error(ctx, e);
  }
  return 0;
}
