// The PDF incremental scanner (formats/src/pdf_scan.cpp): size, startxref and its kind, read
// from the raw bytes before qpdf sees them.

#include "pdf_scan.hpp"
#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto src = kyso::formats::detail::inspect_pdf(kyso::fuzz::as_text(data, size), "fuzz");
    if (src.size != size || src.startxref >= size) __builtin_trap();
  } catch (const kyso::Error&) {
  }
  return 0;
}
