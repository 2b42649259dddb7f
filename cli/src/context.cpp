#include "context.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

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
    // The built-in profiles' workarounds for known token firmware (shown by `kyso tokens`).
    cfg.quirks = firmware_config::to_token_quirks(firmware_config::default_token_profiles());
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
