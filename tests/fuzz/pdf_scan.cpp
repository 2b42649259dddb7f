// The PDF incremental scanner (formats/src/pdf_scan.cpp): size, startxref and its kind, read
// from the raw bytes before qpdf sees them; then the plain-PDF reader (pdf_facts.cpp) over the
// same bytes, which must return facts or nullopt and never read outside them.

#include "pdf_scan.hpp"
#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "pdf_facts.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto src = kyso::formats::detail::inspect_pdf(kyso::fuzz::as_text(data, size), "fuzz");
    if (src.size != size || src.startxref >= size) __builtin_trap();
    const auto facts = kyso::formats::detail::read_plain_pdf(kyso::fuzz::as_text(data, size), src);
    if (facts && facts->size <= 0) __builtin_trap();
  } catch (const kyso::Error&) {
  }
  return 0;
}
