#pragma once
// What every `kyso` subcommand shares: global options, the token library, output helpers.

#include <CLI/CLI.hpp>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kyso/core/error.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/pkcs11/library.hpp"

namespace kyso::cli {

struct Context {
  std::vector<std::string> modules;
  bool no_system_modules = false;
  /// Token profiles (tokens.toml) whose quirks library() applies; empty: the built-in table.
  std::string profiles;
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

/// The credentials that fit `role_name` (all when empty), the role's likeliest holder first.
std::vector<Credential> credentials_for(Context& ctx, const std::string& role_name);
/// A full credential id or a unique prefix of one (like git).
std::string resolve_credential(Context& ctx, const std::string& id);
/// The credential to sign as `role`: valid now, of the right kind, the likeliest holder first.
std::string credential_for_role(Context& ctx, const std::string& role);

/// Logs `signer` in once, as it asks: the PIN from `pin_file` (mode 600) or typed at the
/// terminal after `prompt` with echo off, the PIN pad, or nothing. The PIN is wiped before this
/// returns (a key that authenticates before each signature keeps the signer's own copy for its
/// lifetime). Never retried: a wrong PIN is thrown to the caller.
void authorize_once(const Context& ctx, Signer& signer, const std::string& pin_file,
                    const std::string& prompt);

/// Ctrl+C during a long run (kyso sign, kyso provision batch): while a guard lives, the first
/// SIGINT only sets requested(), so the run finishes the item in hand, reports and stops; a
/// second one ends the process at once. The previous handler is restored when the guard goes.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  InterruptGuard(InterruptGuard&&) = delete;
  InterruptGuard& operator=(InterruptGuard&&) = delete;
  [[nodiscard]] static bool requested() noexcept;

 private:
  void (*previous_)(int);
};

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
void add_sign_command(CLI::App& app, Context& ctx);            ///< sign
void add_browser_policy_command(CLI::App& app, Context& ctx);  ///< browser-policy

}  // namespace kyso::cli
