// `kyso verify` on a file: the input is the file (PDF, XML or CMS/P7S, told apart by its content
// as verify_file does), verified offline (no revocation fetches) against the test anchors in
// the corpus's directory when present. Every outcome but a crash is fine: a report, or a
// kyso::Error for a document that is none of them.

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "kyso/formats/verify.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = kyso::fuzz::write_file("document", data, size);
  kyso::formats::VerifyOptions options;
  options.check_revocation = false;
  options.timeout = std::chrono::seconds(1);
  try {
    const auto report = kyso::formats::verify_file(path.string(), options);
    const nlohmann::json j = report;  // the JSON `kyso verify --json` prints
    (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const kyso::Error&) {
  }
  return 0;
}
