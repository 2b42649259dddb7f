#pragma once
// A tiny PDF writer for test and bench transcripts: one page, Helvetica text, a correct xref
// (classic table or cross-reference stream), Vietnamese title in the Info dictionary.

#include <ostream>
#include <string>
#include <vector>

namespace kyso::test {

struct PdfPage {
  std::string title;               ///< UTF-8, goes to /Title as UTF-16BE
  std::vector<std::string> lines;  ///< UTF-8; diacritics are dropped on the page (no embedded font)
};

/// Writes the PDF. `padding` adds an unreferenced-by-content stream of that many bytes, written
/// in chunks (for the 200 MB bench file).
void write_pdf(std::ostream& out, const PdfPage& page, bool xref_stream = false,
               std::size_t padding = 0);

/// "Nguyễn Thị Ánh" -> "Nguyen Thi Anh".
std::string strip_vietnamese(std::string_view utf8);

}  // namespace kyso::test
