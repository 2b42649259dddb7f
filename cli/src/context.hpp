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

// The subcommands, one function per area (src/cmd_<area>.cpp); main() adds them in this order.
void add_agent_commands(CLI::App& app, Context& ctx);          ///< origins, audit
void add_doctor_command(CLI::App& app, Context& ctx);          ///< doctor
void add_provision_commands(CLI::App& app, Context& ctx);      ///< provision
void add_token_commands(CLI::App& app, Context& ctx);          ///< tokens, sign-hash, usb
void add_verify(CLI::App& app, Context& ctx);                  ///< verify
void add_extend(CLI::App& app, Context& ctx);                  ///< extend
void add_prepare_embed(CLI::App& app, Context& ctx);           ///< prepare, embed
void add_browser_policy_command(CLI::App& app, Context& ctx);  ///< browser-policy

}  // namespace kyso::cli
