#include "kyso/formats/pdf_text.hpp"

#include <algorithm>
#include <cstdio>

#include "pdf_appearance.hpp"

namespace kyso::formats {
namespace {

// A PDF text string: UTF-16BE with a BOM, as a hex string (any UTF-8 input).
std::string pdf_text_string(const std::string& utf8) {
  std::string hex = "<FEFF";
  char buf[8];
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    std::uint32_t cp = c;
    std::size_t n = 1;
    if (c >= 0xF0 && i + 3 < utf8.size()) {
      cp = ((c & 0x07U) << 18U) | ((static_cast<unsigned char>(utf8[i + 1]) & 0x3FU) << 12U) |
           ((static_cast<unsigned char>(utf8[i + 2]) & 0x3FU) << 6U) |
           (static_cast<unsigned char>(utf8[i + 3]) & 0x3FU);
      n = 4;
    } else if (c >= 0xE0 && i + 2 < utf8.size()) {
      cp = ((c & 0x0FU) << 12U) | ((static_cast<unsigned char>(utf8[i + 1]) & 0x3FU) << 6U) |
           (static_cast<unsigned char>(utf8[i + 2]) & 0x3FU);
      n = 3;
    } else if (c >= 0xC0 && i + 1 < utf8.size()) {
      cp = ((c & 0x1FU) << 6U) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3FU);
      n = 2;
    }
    i += n;
    auto unit = [&](std::uint32_t u) {
      std::snprintf(buf, sizeof buf, "%04X", u & 0xFFFFU);
      hex += buf;
    };
    if (cp >= 0x10000) {
      cp -= 0x10000;
      unit(0xD800 + (cp >> 10U));
      unit(0xDC00 + (cp & 0x3FFU));
    } else {
      unit(cp);
    }
  }
  return hex + ">";
}

}  // namespace

Bytes text_pdf(const std::vector<std::string>& lines, const TextPdfOptions& options) {
  constexpr double kWidth = 595.28;  // A4
  constexpr double kHeight = 841.89;
  constexpr double kMargin = 36;
  const std::size_t per_page = std::max<std::size_t>(options.lines_per_page, 1);
  const std::size_t pages = std::max<std::size_t>((lines.size() + per_page - 1) / per_page, 1);

  // Objects: 1 catalog, 2 pages, 3 info, then per page: page, content, appearance (6 objects).
  std::vector<std::string> objects(3);
  std::string kids;
  for (std::size_t p = 0; p < pages; ++p) {
    const int page_obj = static_cast<int>(objects.size()) + 1;
    const int content_obj = page_obj + 1;
    const int form_obj = page_obj + 2;
    const auto begin = lines.begin() + static_cast<std::ptrdiff_t>(p * per_page);
    const auto end =
        lines.begin() + static_cast<std::ptrdiff_t>(std::min(lines.size(), (p + 1) * per_page));
    std::vector<std::string> chunk(begin, end);
    if (chunk.empty()) chunk.emplace_back(" ");
    const double box_w = kWidth - 2 * kMargin;
    const double box_h =
        std::min(kHeight - 2 * kMargin, 13.2 * static_cast<double>(chunk.size()) + 8);
    auto appearance =
        detail::signature_appearance(form_obj, box_w, box_h, chunk, options.font_file);
    char content[128];
    std::snprintf(content, sizeof content, "q 1 0 0 1 %.2f %.2f cm /R0 Do Q", kMargin,
                  kHeight - kMargin - box_h);
    const std::string body = content;
    objects.push_back(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Resources "
        "<< /XObject << /R0 " +
        std::to_string(form_obj) + " 0 R >> >> /Contents " + std::to_string(content_obj) +
        " 0 R >>");
    objects.push_back("<< /Length " + std::to_string(body.size()) + " >>\nstream\n" + body +
                      "\nendstream");
    for (auto& a : appearance) objects.push_back(std::move(a));
    kids += (kids.empty() ? "" : " ") + std::to_string(page_obj) + " 0 R";
  }
  objects[0] = "<< /Type /Catalog /Pages 2 0 R >>";
  objects[1] = "<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages) + " >>";
  objects[2] = "<< /Title " + pdf_text_string(options.title) + " /Producer (Kyso) >>";

  std::string out = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n";
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(out.size());
    out += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const std::size_t xref = out.size();
  out += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  char entry[40];
  for (const auto off : offsets) {
    std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", off);
    out += entry;
  }
  out += "trailer\n<< /Size " + std::to_string(objects.size() + 1) +
         " /Root 1 0 R /Info 3 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return {out.begin(), out.end()};
}

}  // namespace kyso::formats
