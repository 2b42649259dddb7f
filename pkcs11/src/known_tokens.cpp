#include <filesystem>

#include "kyso/pkcs11/usb.hpp"

namespace kyso::pkcs11 {

const std::vector<KnownToken>& builtin_known_tokens() {
  static const std::vector<KnownToken> table{
      {.vendor_id = 0x096e,
       .product_id = 0x0807,
       .vendor = "Feitian",
       .model = "ePass2003",
       .linux_modules = {"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                         "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
                         "/usr/lib/libcastle.so.1.0.0", "/usr/lib/libcastle.so"},
       .windows_modules = {"eps2003csp11.dll", "opensc-pkcs11.dll"},
       .macos_modules = {"/Library/OpenSC/lib/opensc-pkcs11.so"},
       .linux_package = "opensc-pkcs11"},
      {.vendor_id = 0x096e,
       .product_id = 0x080a,
       .vendor = "Feitian",
       .model = "ePass2003Auto",
       .linux_modules = {"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
                         "/usr/lib/libcastle.so.1.0.0"},
       .windows_modules = {"ShuttleCsp11_3003.dll"},
       .macos_modules = {},
       .linux_package = "opensc-pkcs11"},
      {.vendor_id = 0x0529,
       .product_id = 0x0620,
       .vendor = "SafeNet",
       .model = "eToken 5110",
       .linux_modules = {"/usr/lib/libeToken.so", "/usr/lib/libeTPkcs11.so"},
       .windows_modules = {"eTPKCS11.dll"},
       .macos_modules = {"/usr/local/lib/libeTPkcs11.dylib"},
       .linux_package = "SafeNet Authentication Client (safenetauthenticationclient)"},
      {.vendor_id = 0x0529,
       .product_id = 0x0602,
       .vendor = "SafeNet",
       .model = "eToken 7300",
       .linux_modules = {"/usr/lib/libeToken.so", "/usr/lib/libeTPkcs11.so"},
       .windows_modules = {"eTPKCS11.dll"},
       .macos_modules = {"/usr/local/lib/libeTPkcs11.dylib"},
       .linux_package = "SafeNet Authentication Client (safenetauthenticationclient)"},
      {.vendor_id = 0x08e6,
       .product_id = 0x34cc,
       .vendor = "SafeNet",
       .model = "eToken 5300",
       .linux_modules = {"/usr/lib/libeToken.so", "/usr/lib/libeTPkcs11.so"},
       .windows_modules = {"eTPKCS11.dll"},
       .macos_modules = {"/usr/local/lib/libeTPkcs11.dylib"},
       .linux_package = "SafeNet Authentication Client (safenetauthenticationclient)"},
  };
  return table;
}

std::vector<std::string> installed_known_modules(std::span<const KnownToken> table) {
  std::vector<std::string> out;
  for (const auto& t : table) {
    for (const auto& m : t.linux_modules) {
      std::error_code ec;
      if (std::filesystem::exists(m, ec)) {
        out.push_back(m);
        break;
      }
    }
  }
  return out;
}

}  // namespace kyso::pkcs11
