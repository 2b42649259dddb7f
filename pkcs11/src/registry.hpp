#pragma once
// The system's registry of PKCS#11 modules: p11-kit on Linux (registry_p11kit.cpp), none on
// Windows (registry_none.cpp), where middleware is found through the known-token table's
// paths. CMake compiles one of the two.

#include <string>
#include <vector>

#include "cryptoki.hpp"

namespace kyso::pkcs11::detail {

/// The registered modules' paths, minus trust-policy modules (they hold CA certificates, not
/// signing keys). Empty without a registry.
std::vector<std::string> registry_module_paths();
/// The registry's name for a CK_RV (p11-kit's text), or nullptr.
const char* registry_rv_text(CK_RV rv) noexcept;

}  // namespace kyso::pkcs11::detail
