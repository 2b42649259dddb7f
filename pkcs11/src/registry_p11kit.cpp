// registry.hpp over p11-kit (Linux).
#include <p11-kit/p11-kit.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "registry.hpp"

namespace kyso::pkcs11::detail {

// p11-kit only dlopens them here; Kyso initializes the ones it uses.
std::vector<std::string> registry_module_paths() {
  std::vector<std::string> out;
  CK_FUNCTION_LIST** modules = p11_kit_modules_load(nullptr, P11_KIT_MODULE_UNMANAGED);
  if (modules == nullptr) return out;
  for (CK_FUNCTION_LIST** m = modules; *m != nullptr; ++m) {
    char* trust = p11_kit_config_option(*m, "trust-policy");
    const bool is_trust = trust != nullptr && std::string_view(trust) == "yes";
    std::free(trust);
    char* file = p11_kit_module_get_filename(*m);
    if (file == nullptr) continue;
    std::string path(file);
    std::free(file);
    if (is_trust) continue;
    if (!std::filesystem::path(path).is_absolute())
      path = std::string(KYSO_P11_MODULE_PATH) + "/" + path;
    out.push_back(std::move(path));
  }
  p11_kit_modules_release(modules);
  return out;
}

const char* registry_rv_text(CK_RV rv) noexcept {
  return p11_kit_strerror(rv);
}

}  // namespace kyso::pkcs11::detail
