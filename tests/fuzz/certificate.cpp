// Certificate parsing (kyso/core/certificate.hpp) as every token, CSC answer and signed document
// reaches it: DER (PEM when it starts like one), incl. the Vietnamese subject fields (UID with
// CCCD:/CMND:/HC:/MST:/MNS: prefixes, titles), AIA/CDP URLs, key usages; the result as the
// wire and the CLI print it, and the role guess made from it.

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/roles.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const kyso::CertificateInfo info = kyso::parse_certificate({data, size});
    const nlohmann::json j = info;
    (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
    (void)info.uid("CCCD:");
    (void)info.can_sign();
    (void)info.valid_at(std::chrono::system_clock::now());
    (void)kyso::guess_role(info);
  } catch (const kyso::Error&) {
  }
  return 0;
}
