#pragma once
/// @file
/// A plain PDF of text lines (A4 pages), set in an embedded subset of a TrueType font with a
/// ToUnicode map, so Vietnamese renders in every viewer and text extraction returns the lines:
/// the body of a report that is then signed with sign_pdf().

#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"

namespace kyso::formats {

struct TextPdfOptions {
  std::string title;  ///< the document information's /Title (UTF-8)
  std::string font_file = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  std::size_t lines_per_page = 52;
};

/// One line per entry (UTF-8; a line wider than the page makes that page's text smaller, so
/// callers wrap long lines). Throws Error(BadRequest) for a character the font lacks.
Bytes text_pdf(const std::vector<std::string>& lines, const TextPdfOptions& options);

}  // namespace kyso::formats
