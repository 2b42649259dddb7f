#pragma once
// The appearance of a visible signature box: a form XObject that draws the given lines with an
// embedded subset of a TrueType font (Type0 / CIDFontType2, Identity-H, ToUnicode), so
// Vietnamese diacritics render in every viewer and text extraction gives back the exact text.

#include <string>
#include <vector>

namespace kyso::formats::detail {

/// PDF object bodies (without "N 0 obj"/"endobj"), numbered `first`, `first + 1`, ...: the
/// first is the form XObject for the widget's /AP /N, the others the font objects it uses.
/// `width` and `height` are the box's size in points. Throws Error(BadRequest) when the font
/// cannot be read or lacks a glyph for some character of `lines`.
std::vector<std::string> signature_appearance(int first, double width, double height,
                                              const std::vector<std::string>& lines,
                                              const std::string& font_file);

}  // namespace kyso::formats::detail
