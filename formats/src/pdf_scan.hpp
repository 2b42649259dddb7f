#pragma once
// The raw facts about a PDF file qpdf does not expose: size, where the last cross-reference
// section starts and whether it is a stream.

#include <cstdint>
#include <string>
#include <string_view>

namespace kyso::formats::detail {

struct PdfSource {
  std::uint64_t size = 0;
  std::uint64_t startxref = 0;
  bool xref_stream = false;
  bool ends_with_newline = false;
};

/// Throws Error(DocumentInvalid) when the file is not a PDF or has no usable startxref.
PdfSource inspect_pdf(const std::string& path);
/// The same for a file already in memory (`name` for messages).
PdfSource inspect_pdf(std::string_view data, const std::string& name);

/// Called inside a catch (...) around qpdf: rethrows what qpdf and the standard library throw
/// as Kyso's document errors (DOCUMENT_ENCRYPTED for a password, DOCUMENT_INVALID otherwise);
/// a kyso::Error passes through unchanged.
[[noreturn]] void rethrow_as_document_error();

}  // namespace kyso::formats::detail
