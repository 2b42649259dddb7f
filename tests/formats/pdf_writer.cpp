#include "pdf_writer.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace kyso::test {
namespace {

std::u32string to_u32(std::string_view s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1FU) : n == 3 ? (c & 0x0FU) : (c & 0x07U);
    for (std::size_t k = 1; k < n && i + k < s.size(); ++k) {
      cp = (cp << 6U) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string pdf_string(std::string_view s) {
  std::string out = "(";
  for (char c : s) {
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out + ")";
}

std::string utf16_hex(std::string_view utf8) {
  std::string out = "<FEFF";
  std::array<char, 8> buf{};
  for (char32_t cp : to_u32(utf8)) {
    if (cp > 0xFFFF) continue;
    std::snprintf(buf.data(), buf.size(), "%04X", static_cast<unsigned>(cp));
    out += buf.data();
  }
  return out + ">";
}

}  // namespace

std::string strip_vietnamese(std::string_view utf8) {
  // Base letters of the Vietnamese precomposed characters, by Unicode block.
  static const std::u32string a = U"àáạảãâầấậẩẫăằắặẳẵ", A = U"ÀÁẠẢÃÂẦẤẬẨẪĂẰẮẶẲẴ";
  static const std::u32string e = U"èéẹẻẽêềếệểễ", E = U"ÈÉẸẺẼÊỀẾỆỂỄ";
  static const std::u32string i = U"ìíịỉĩ", I = U"ÌÍỊỈĨ";
  static const std::u32string o = U"òóọỏõôồốộổỗơờớợởỡ", O = U"ÒÓỌỎÕÔỒỐỘỔỖƠỜỚỢỞỠ";
  static const std::u32string u = U"ùúụủũưừứựửữ", U = U"ÙÚỤỦŨƯỪỨỰỬỮ";
  static const std::u32string y = U"ỳýỵỷỹ", Y = U"ỲÝỴỶỸ";
  const std::array<std::pair<const std::u32string*, char>, 12> table{{{&a, 'a'},
                                                                      {&A, 'A'},
                                                                      {&e, 'e'},
                                                                      {&E, 'E'},
                                                                      {&i, 'i'},
                                                                      {&I, 'I'},
                                                                      {&o, 'o'},
                                                                      {&O, 'O'},
                                                                      {&u, 'u'},
                                                                      {&U, 'U'},
                                                                      {&y, 'y'},
                                                                      {&Y, 'Y'}}};
  std::string out;
  for (char32_t cp : to_u32(utf8)) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
      continue;
    }
    if (cp == U'đ') {
      out += 'd';
      continue;
    }
    if (cp == U'Đ') {
      out += 'D';
      continue;
    }
    char base = '?';
    for (const auto& [set, b] : table) {
      if (set->find(cp) != std::u32string::npos) base = b;
    }
    out += base;
  }
  return out;
}

void write_pdf(std::ostream& out, const PdfPage& page, bool xref_stream, std::size_t padding) {
  std::vector<std::size_t> offsets;
  std::size_t pos = 0;
  auto put = [&](std::string_view s) {
    out.write(s.data(), static_cast<std::streamsize>(s.size()));
    pos += s.size();
  };
  auto begin_obj = [&](std::size_t num) {
    offsets.resize(std::max(offsets.size(), num + 1));
    offsets[num] = pos;
    put(std::to_string(num) + " 0 obj\n");
  };

  std::string content = "BT /F1 16 Tf 50 790 Td (" + strip_vietnamese(page.title) + ") Tj ET\n";
  int y = 760;
  for (const auto& line : page.lines) {
    content += "BT /F1 11 Tf 50 " + std::to_string(y) + " Td " +
               pdf_string(strip_vietnamese(line)) + " Tj ET\n";
    y -= 16;
  }

  put("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
  begin_obj(1);
  put("<< /Type /Catalog /Pages 2 0 R /Lang (vi-VN) >>\nendobj\n");
  begin_obj(2);
  put("<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
  begin_obj(3);
  put("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
      "/Contents 4 0 R >>\nendobj\n");
  begin_obj(4);
  put("<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content +
      "endstream\nendobj\n");
  begin_obj(5);
  put("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
      ">>\nendobj\n");
  begin_obj(6);
  put("<< /Title " + utf16_hex(page.title) +
      " /Producer (Kyso test writer) /CreationDate (D:20260520080000+07'00') >>\nendobj\n");
  std::size_t size = 7;
  if (padding > 0) {
    begin_obj(7);
    put("<< /Length " + std::to_string(padding) + " >>\nstream\n");
    const std::string chunk(1 << 16, 'x');
    for (std::size_t left = padding; left > 0;) {
      const std::size_t n = std::min(left, chunk.size());
      put(std::string_view(chunk).substr(0, n));
      left -= n;
    }
    put("\nendstream\nendobj\n");
    size = 8;
  }
  std::array<char, 32> buf{};
  if (!xref_stream) {
    const std::size_t xref = pos;
    put("xref\n0 " + std::to_string(size) + "\n0000000000 65535 f \n");
    for (std::size_t n = 1; n < size; ++n) {
      std::snprintf(buf.data(), buf.size(), "%010zu 00000 n \n", offsets[n]);
      put(buf.data());
    }
    put("trailer\n<< /Size " + std::to_string(size) +
        " /Root 1 0 R /Info 6 0 R /ID [<4b79736f54657374> <4b79736f54657374>] >>\nstartxref\n" +
        std::to_string(xref) + "\n%%EOF\n");
    return;
  }
  // Cross-reference stream (PDF 1.5): entries of 1 + 4 + 2 bytes, the stream itself included.
  const std::size_t xref_num = size;
  offsets.resize(xref_num + 1);
  offsets[xref_num] = pos;
  std::string rows;
  auto row = [&](unsigned type, std::size_t f2, unsigned f3) {
    rows += static_cast<char>(type);
    for (int s = 24; s >= 0; s -= 8) rows += static_cast<char>((f2 >> s) & 0xFFU);
    rows += static_cast<char>((f3 >> 8U) & 0xFFU);
    rows += static_cast<char>(f3 & 0xFFU);
  };
  row(0, 0, 65535);
  for (std::size_t n = 1; n <= xref_num; ++n) row(1, offsets[n], 0);
  put(std::to_string(xref_num) + " 0 obj\n<< /Type /XRef /Size " + std::to_string(xref_num + 1) +
      " /W [1 4 2] /Root 1 0 R /Info 6 0 R /ID [<4b79736f54657374> <4b79736f54657374>] /Length " +
      std::to_string(rows.size()) + " >>\nstream\n");
  put(rows);
  put("\nendstream\nendobj\nstartxref\n" + std::to_string(offsets[xref_num]) + "\n%%EOF\n");
}

}  // namespace kyso::test
