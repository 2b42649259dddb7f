#pragma once
// What every `kyso` subcommand shares: global options, the token library, output helpers.

#include <CLI/CLI.hpp>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kyso/core/error.hpp"
#include "kyso/pkcs11/library.hpp"

namespace kyso::cli {

struct Context {
  std::vector<std::string> modules;
  bool no_system_modules = false;
  std::string lang = "vi";
  bool json = false;

  [[nodiscard]] Language language() const { return parse_language(lang); }
  /// Vietnamese or English text by the --lang option.
  [[nodiscard]] const char* tr(const char* vi, const char* en) const {
    return language() == Language::Vi ? vi : en;
  }
  /// The token library, loaded on first use.
  pkcs11::Library& library();
  /// Prints a JSON document on stdout.
  static void print_json(const nlohmann::json& j);

 private:
  std::unique_ptr<pkcs11::Library> library_;
};

/// Trust anchors when none are given: IT installs the national roots (NEAC, MIC/MST, VGCA) as
/// /etc/kyso/trust/*.pem|*.crt.
std::vector<std::string> default_trust_anchors();

/// Prints an error for people (or as JSON with --json) and returns the process exit code.
int report_error(const Context& ctx, const Error& e);

/// Subcommand registration: each cmd_<area>.cpp registers a function that adds its
/// subcommands, and main() calls them all.
using CommandAdder = void (*)(CLI::App&, Context&);
std::vector<CommandAdder>& command_adders();
struct CommandRegistrar {
  explicit CommandRegistrar(CommandAdder f) { command_adders().push_back(f); }
};
#define KYSO_CLI_COMMANDS(fn) \
  static const ::kyso::cli::CommandRegistrar kyso_cli_registrar_##fn{&fn};

}  // namespace kyso::cli
