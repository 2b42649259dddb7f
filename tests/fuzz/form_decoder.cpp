// The appliance's application/x-www-form-urlencoded decoder (oauth2/token's body, RFC 6749):
// remote-sign/appliance/src/service.cpp decode_form. Malformed bodies may only throw
// std::exception (the endpoint answers invalid_request).

#include <stdexcept>

#include "fuzz_support.hpp"
#include "service.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto params = kyso::appliance::decode_form(kyso::fuzz::as_text(data, size));
    std::size_t total = 0;
    for (const auto& [k, v] : params) total += k.size() + v.size();
    if (total > size) __builtin_trap();  // decoding never grows the text
  } catch (const std::exception&) {
  }
  return 0;
}
