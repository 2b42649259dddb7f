#include "context.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "kyso/core/roles.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/firmware_config/token_profiles.hpp"

namespace kyso::cli {

pkcs11::Library& Context::library() {
  if (!library_) {
    pkcs11::ModuleConfig cfg;
    cfg.paths = modules;
    if (const char* env = std::getenv("KYSO_PKCS11_MODULE"); env != nullptr && *env != '\0') {
      cfg.paths.emplace_back(env);
    }
    cfg.use_p11kit = !no_system_modules;
    cfg.use_known = !no_system_modules;
    // The profiles' workarounds for known token firmware (shown by `kyso tokens` and doctor).
    cfg.quirks = firmware_config::to_token_quirks(
        profiles.empty() ? firmware_config::default_token_profiles()
                         : firmware_config::load_token_profiles(profiles));
    library_ = std::make_unique<pkcs11::Library>(std::move(cfg));
  }
  return *library_;
}

void Context::print_json(const nlohmann::json& j) {
  std::cout << j.dump(2) << '\n';
}

std::vector<std::string> default_trust_anchors() {
  std::vector<std::string> out;
  const std::filesystem::path dir = "/etc/kyso/trust";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".pem" || e.path().extension() == ".crt")
      out.push_back(e.path().string());
  }
  return out;
}

std::vector<Credential> credentials_for(Context& ctx, const std::string& role_name) {
  auto creds = ctx.library().credentials();
  if (role_name.empty()) return creds;
  const auto role = parse_role(role_name);
  std::erase_if(creds, [&](const Credential& c) { return !role_accepts(*role, c.cert); });
  // Most likely holder of the role first (a principal's certificate for `principal`).
  std::ranges::stable_sort(creds, [&](const Credential& a, const Credential& b) {
    return (guess_role(a.cert) == role) > (guess_role(b.cert) == role);
  });
  return creds;
}

std::string resolve_credential(Context& ctx, const std::string& id) {
  std::vector<std::string> matches;
  for (const auto& c : ctx.library().credentials()) {
    if (c.id().starts_with(id)) matches.push_back(c.id());
  }
  if (matches.size() == 1) return matches.front();
  if (matches.empty()) throw Error(ErrorCode::CredentialNotFound, "no credential " + id);
  throw Error(ErrorCode::BadRequest, "credential prefix " + id + " is ambiguous");
}

std::string credential_for_role(Context& ctx, const std::string& role) {
  const auto now = std::chrono::system_clock::now();
  for (const auto& c : credentials_for(ctx, role)) {
    if (c.cert.valid_at(now) && c.cert.can_sign()) return c.id();
  }
  throw Error(ErrorCode::RoleNoCredential, "no valid credential for role " + role);
}

void authorize_once(const Context& ctx, Signer& signer, const std::string& pin_file,
                    const std::string& prompt) {
  switch (signer.auth_required()) {
    case AuthKind::None:
      break;
    case AuthKind::ProtectedPath:
      std::cerr << ctx.tr("Hãy nhập PIN trên token / bàn phím của đầu đọc...\n",
                          "Enter the PIN on the token's PIN pad...\n");
      signer.authorize({}, {});
      break;
    case AuthKind::Pin:
    case AuthKind::Otp: {
      Secret pin = pin_file.empty() ? Secret::from_terminal(prompt) : Secret::from_file(pin_file);
      signer.authorize({.pin = &pin}, {});
      break;  // `pin` is wiped when it goes out of scope
    }
  }
}

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_first_sigint(int /*sig*/) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // the next Ctrl+C ends the process
}
}  // namespace

InterruptGuard::InterruptGuard() : previous_(std::signal(SIGINT, on_first_sigint)) {
  g_interrupted.store(false);
}

InterruptGuard::~InterruptGuard() {
  std::signal(SIGINT, previous_);
}

bool InterruptGuard::requested() noexcept {
  return g_interrupted.load();
}

int report_error(const Context& ctx, const Error& e) {
  if (ctx.json) {
    Context::print_json({{"error",
                          {{"code", std::string(e.name())},
                           {"message", std::string(e.message(ctx.language()))},
                           {"detail", e.detail()}}}});
  } else {
    std::cerr << ctx.tr("Lỗi", "Error") << " [" << e.name() << "]: " << e.message(ctx.language())
              << "\n  (" << e.detail() << ")\n";
  }
  return 1;
}

}  // namespace kyso::cli
