// kyso: list tokens and credentials, sign a hash, and (later) provision, verify and diagnose.

#include <CLI/CLI.hpp>

#include <iostream>

#include "context.hpp"

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
  for (auto add : kyso::cli::command_adders()) add(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kyso::Error& e) {
    return kyso::cli::report_error(ctx, e);
  }
  return 0;
}
