#include <catch2/catch.hpp>

#include "kyso/pkcs11/usb.hpp"

using kyso::pkcs11::UsbDevice;

TEST_CASE("a plugged-in ePass2003 without its module says which package to install",
          "[pkcs11][usb]") {
  const std::vector<UsbDevice> inventory{{0x1d6b, 0x0002, 1, 1}, {0x096e, 0x0807, 1, 4}};
  const auto status = kyso::pkcs11::diagnose_usb(inventory, kyso::pkcs11::builtin_known_tokens(),
                                                 [](const std::string&) { return false; });
  REQUIRE(status.size() == 1);  // the root hub is not a token
  CHECK(status[0].token.model == "ePass2003");
  CHECK_FALSE(status[0].module.has_value());
  CHECK(status[0].hint_en.find("opensc-pkcs11") != std::string::npos);
  CHECK(status[0].hint_vi.find("chưa cài") != std::string::npos);
}

TEST_CASE("a known token with its module installed names the module", "[pkcs11][usb]") {
  const std::vector<UsbDevice> inventory{{0x0529, 0x0620, 2, 7}};
  const auto status = kyso::pkcs11::diagnose_usb(
      inventory, kyso::pkcs11::builtin_known_tokens(),
      [](const std::string& p) { return p == "/usr/lib/libeTPkcs11.so"; });
  REQUIRE(status.size() == 1);
  CHECK(status[0].token.vendor == "SafeNet");
  CHECK(status[0].module == "/usr/lib/libeTPkcs11.so");
}

TEST_CASE("the built-in table covers the tokens used in Vietnam", "[pkcs11][usb]") {
  const auto& table = kyso::pkcs11::builtin_known_tokens();
  auto has = [&](std::uint16_t v, std::uint16_t p) {
    return std::any_of(table.begin(), table.end(),
                       [&](const auto& t) { return t.vendor_id == v && t.product_id == p; });
  };
  CHECK(has(0x096e, 0x0807));
  CHECK(has(0x096e, 0x080a));
  CHECK(has(0x0529, 0x0620));
  CHECK(has(0x0529, 0x0602));
  CHECK(has(0x08e6, 0x34cc));
}

TEST_CASE("listing USB devices never throws, even without a bus", "[pkcs11][usb]") {
  CHECK_NOTHROW(kyso::pkcs11::list_usb_devices());
}
