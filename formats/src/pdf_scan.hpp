#pragma once
// The raw facts about a PDF file qpdf does not expose: size, where the last cross-reference
// section starts and whether it is a stream.

#include <cstdint>
#include <string>

namespace kyso::formats::detail {

struct PdfSource {
  std::uint64_t size = 0;
  std::uint64_t startxref = 0;
  bool xref_stream = false;
  bool ends_with_newline = false;
};

/// Throws Error(DocumentInvalid) when the file is not a PDF or has no usable startxref.
PdfSource inspect_pdf(const std::string& path);

}  // namespace kyso::formats::detail
