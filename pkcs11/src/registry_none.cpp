// registry.hpp where there is no p11-kit (Windows): no registered modules, no CK_RV texts.
#include "registry.hpp"

namespace kyso::pkcs11::detail {

std::vector<std::string> registry_module_paths() {
  return {};
}

const char* registry_rv_text(CK_RV /*rv*/) noexcept {
  return nullptr;
}

}  // namespace kyso::pkcs11::detail
