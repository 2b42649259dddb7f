#include "pdf_appearance.hpp"

#include <hb-ot.h>
#include <hb-subset.h>
#include <hb.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"

namespace kyso::formats::detail {
namespace {

template <typename T, void (*F)(T*)>
struct HbFree {
  void operator()(T* p) const noexcept { F(p); }
};
using FacePtr = std::shared_ptr<hb_face_t>;
using FontPtr = std::unique_ptr<hb_font_t, HbFree<hb_font_t, hb_font_destroy>>;
using BufferPtr = std::unique_ptr<hb_buffer_t, HbFree<hb_buffer_t, hb_buffer_destroy>>;
using BlobPtr = std::unique_ptr<hb_blob_t, HbFree<hb_blob_t, hb_blob_destroy>>;
using InputPtr =
    std::unique_ptr<hb_subset_input_t, HbFree<hb_subset_input_t, hb_subset_input_destroy>>;
using PlanPtr = std::unique_ptr<hb_subset_plan_t, HbFree<hb_subset_plan_t, hb_subset_plan_destroy>>;
using SubFacePtr = std::unique_ptr<hb_face_t, HbFree<hb_face_t, hb_face_destroy>>;

// A font file is read once per process: a batch of visible signatures reuses the parsed face
// (HarfBuzz faces are immutable and safe to share between threads).
FacePtr load_face(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, FacePtr> cache;
  const std::scoped_lock lock(mutex);
  auto& slot = cache[path];
  if (!slot) {
    BlobPtr blob(hb_blob_create_from_file_or_fail(path.c_str()));
    if (!blob) throw Error(ErrorCode::BadRequest, "cannot read the font " + path);
    hb_face_t* face = hb_face_create(blob.get(), 0);
    if (hb_face_get_glyph_count(face) == 0) {
      hb_face_destroy(face);
      throw Error(ErrorCode::BadRequest, path + " is not a TrueType/OpenType font");
    }
    hb_face_make_immutable(face);
    slot = FacePtr(face, hb_face_destroy);
  }
  return slot;
}

std::string num(double v) {
  std::array<char, 32> buf{};
  auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, 2);
  std::string s(buf.data(), ec == std::errc{} ? end : buf.data());
  while (s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
    const bool dot = s.back() == '.';
    s.pop_back();
    if (dot) break;
  }
  return s.empty() || s == "-0" ? "0" : s;
}

std::string hex4(unsigned v) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "%04X", v & 0xFFFFU);
  return buf.data();
}

// UTF-8 -> UTF-16BE hex digits (surrogate pairs above the BMP).
std::string utf16_hex(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    unsigned cp = n == 1 ? c : n == 2 ? (c & 0x1FU) : n == 3 ? (c & 0x0FU) : (c & 0x07U);
    for (std::size_t k = 1; k < n && i + k < s.size(); ++k)
      cp = (cp << 6U) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out += hex4(0xD800U + (cp >> 10U)) + hex4(0xDC00U + (cp & 0x3FFU));
    } else {
      out += hex4(cp);
    }
  }
  return out;
}

std::string deflate(const std::string& in) {
  uLongf len = compressBound(static_cast<uLong>(in.size()));
  std::string out(len, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &len,
                reinterpret_cast<const Bytef*>(in.data()), static_cast<uLong>(in.size()),
                Z_BEST_COMPRESSION) != Z_OK) {
    throw Error(ErrorCode::Internal, "zlib compress2 failed");
  }
  out.resize(len);
  return out;
}

std::string ref(int n) {
  return std::to_string(n) + " 0 R";
}

std::string stream(const std::string& dict_keys, const std::string& data) {
  return "<< " + dict_keys + " /Length " + std::to_string(data.size()) + " >>\nstream\n" + data +
         "\nendstream";
}

struct Glyph {
  hb_codepoint_t gid = 0;
  std::string text;  // the characters this glyph stands for (UTF-8)
};

}  // namespace

std::vector<std::string> signature_appearance(int first, double width, double height,
                                              const std::vector<std::string>& lines,
                                              const std::string& font_file) {
  const FacePtr face = load_face(font_file);
  const FontPtr font(hb_font_create(face.get()));
  const double upem = hb_face_get_upem(face.get());

  // Glyphs of each line, through HarfBuzz's shaper: combining marks compose into the
  // precomposed Vietnamese glyphs the font has, and each glyph keeps the text it came from.
  std::vector<std::vector<Glyph>> shaped;
  for (const auto& line : lines) {
    const BufferPtr buf(hb_buffer_create());
    hb_buffer_add_utf8(buf.get(), line.data(), static_cast<int>(line.size()), 0,
                       static_cast<int>(line.size()));
    hb_buffer_set_direction(buf.get(), HB_DIRECTION_LTR);
    hb_buffer_set_script(buf.get(), HB_SCRIPT_LATIN);
    hb_buffer_set_language(buf.get(), hb_language_from_string("vi", -1));
    hb_shape(font.get(), buf.get(), nullptr, 0);
    unsigned n = 0;
    const hb_glyph_info_t* info = hb_buffer_get_glyph_infos(buf.get(), &n);
    auto& out = shaped.emplace_back();
    for (unsigned i = 0; i < n; ++i) {
      if (info[i].codepoint == 0) {
        throw Error(ErrorCode::BadRequest,
                    font_file + " has no glyph for a character of \"" + line + "\"");
      }
      std::size_t end = line.size();
      for (unsigned k = i + 1; k < n; ++k) {
        if (info[k].cluster != info[i].cluster) {
          end = info[k].cluster;
          break;
        }
      }
      // Ligatures and marks sharing a cluster: the text goes with the cluster's first glyph.
      const bool first_in_cluster = i == 0 || info[i - 1].cluster != info[i].cluster;
      out.push_back({info[i].codepoint, first_in_cluster && end > info[i].cluster
                                            ? line.substr(info[i].cluster, end - info[i].cluster)
                                            : std::string()});
    }
  }

  // Subset: only the glyphs used, renumbered; the CIDs are the new glyph ids (CIDToGIDMap
  // /Identity), so the content stream addresses the embedded font directly.
  const InputPtr input(hb_subset_input_create_or_fail());
  if (!input) throw Error(ErrorCode::Internal, "hb_subset_input_create_or_fail");
  hb_subset_input_set_flags(input.get(), HB_SUBSET_FLAGS_NO_HINTING);
  hb_set_t* glyph_set = hb_subset_input_glyph_set(input.get());
  std::string used;
  for (const auto& line : shaped) {
    for (const auto& g : line) {
      hb_set_add(glyph_set, g.gid);
      used += std::to_string(g.gid) + ",";
    }
  }
  const PlanPtr plan(hb_subset_plan_create_or_fail(face.get(), input.get()));
  if (!plan) throw Error(ErrorCode::Internal, "cannot subset " + font_file);
  const hb_map_t* old_to_new = hb_subset_plan_old_to_new_glyph_mapping(plan.get());
  const SubFacePtr subset(hb_subset_plan_execute_or_fail(plan.get()));
  if (!subset) throw Error(ErrorCode::Internal, "cannot subset " + font_file);
  const BlobPtr subset_blob(hb_face_reference_blob(subset.get()));
  unsigned subset_len = 0;
  const char* subset_data = hb_blob_get_data(subset_blob.get(), &subset_len);
  const std::string font_bytes(subset_data, subset_len);

  std::map<hb_codepoint_t, std::pair<double, std::string>> cids;  // new gid -> (width, text)
  std::vector<std::string> encoded;                               // each line as <CID...>
  std::vector<double> line_units;                                 // each line's width / 1000
  for (const auto& line : shaped) {
    std::string hex;
    double w = 0;
    for (const auto& g : line) {
      const hb_codepoint_t cid = hb_map_get(old_to_new, g.gid);
      const double adv = hb_font_get_glyph_h_advance(font.get(), g.gid) * 1000.0 / upem;
      auto& slot = cids[cid];
      slot.first = adv;
      if (slot.second.empty()) slot.second = g.text;
      hex += hex4(cid);
      w += adv;
    }
    encoded.push_back("<" + hex + ">");
    line_units.push_back(w);
  }

  // Metrics for the font descriptor, in glyph space (1000 units per em).
  auto metric = [&](hb_ot_metrics_tag_t tag, double fallback) {
    hb_position_t v = 0;
    return hb_ot_metrics_get_position(font.get(), tag, &v) != 0 ? v * 1000.0 / upem : fallback;
  };
  const double ascent = metric(HB_OT_METRICS_TAG_HORIZONTAL_ASCENDER, 900);
  const double descent = metric(HB_OT_METRICS_TAG_HORIZONTAL_DESCENDER, -250);
  const double cap = metric(HB_OT_METRICS_TAG_CAP_HEIGHT, 700);
  std::array<double, 4> bbox{-1000, -300, 2000, 1000};
  {
    const BlobPtr head(hb_face_reference_table(face.get(), HB_TAG('h', 'e', 'a', 'd')));
    unsigned len = 0;
    const auto* h = reinterpret_cast<const unsigned char*>(hb_blob_get_data(head.get(), &len));
    if (len >= 44) {
      for (std::size_t i = 0; i < 4; ++i) {
        const auto v = static_cast<std::int16_t>((h[36 + 2 * i] << 8U) | h[37 + 2 * i]);
        bbox.at(i) = v * 1000.0 / upem;
      }
    }
  }
  std::string ps_name(64, '\0');
  unsigned ps_len = static_cast<unsigned>(ps_name.size());
  hb_ot_name_get_utf8(face.get(), HB_OT_NAME_ID_POSTSCRIPT_NAME, HB_LANGUAGE_INVALID, &ps_len,
                      ps_name.data());
  ps_name.resize(ps_len);
  std::erase_if(ps_name, [](char c) {
    return !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '-');
  });
  if (ps_name.empty()) ps_name = "Font";
  // Subset tag: six capitals derived from the glyphs used (PDF 32000 9.6.4).
  const Bytes tag_hash = sha256({reinterpret_cast<const std::uint8_t*>(used.data()), used.size()});
  std::string base_font = "/";
  for (std::size_t i = 0; i < 6; ++i) base_font += static_cast<char>('A' + tag_hash[i] % 26);
  base_font += "+" + ps_name;

  // Layout: the largest size up to 11 pt at which every line fits, 1.2 line spacing.
  constexpr double kPad = 4;
  const auto rows = static_cast<double>(std::max<std::size_t>(lines.size(), 1));
  double size = std::min(11.0, (height - 2 * kPad) / (1.2 * rows));
  for (double u : line_units) {
    if (u > 0) size = std::min(size, (width - 2 * kPad) * 1000.0 / u);
  }
  if (size < 2) throw Error(ErrorCode::BadRequest, "the signature box is too small for its text");
  const double leading = 1.2 * size;
  // The lines' block centred vertically: first baseline one ascent below the block's top.
  const double block = leading * rows;
  const double top = (height + block) / 2 - size * std::max(ascent, 800.0) / 1000.0;

  std::string content = "q\n0.95 0.97 1 rg 0 0 " + num(width) + " " + num(height) + " re f\n";
  content += "0.1 0.3 0.6 RG 0.8 w 0.4 0.4 " + num(width - 0.8) + " " + num(height - 0.8) +
             " re S\nBT\n0 0 0 rg\n/F1 " + num(size) + " Tf\n" + num(kPad) + " " + num(top) +
             " Td\n";
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (i > 0) content += "0 " + num(-leading) + " Td\n";
    content += encoded[i] + " Tj\n";
  }
  content += "ET\nQ";

  std::string widths = "[";
  for (const auto& [cid, entry] : cids)
    widths += " " + std::to_string(cid) + " [" + num(entry.first) + "]";
  widths += " ]";

  std::string cmap =
      "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
      "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
      "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
      "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n";
  std::vector<std::string> entries;
  for (const auto& [cid, entry] : cids) {
    if (!entry.second.empty())
      entries.push_back("<" + hex4(cid) + "> <" + utf16_hex(entry.second) + ">\n");
  }
  for (std::size_t i = 0; i < entries.size(); i += 100) {
    const std::size_t n = std::min<std::size_t>(100, entries.size() - i);
    cmap += std::to_string(n) + " beginbfchar\n";
    for (std::size_t k = i; k < i + n; ++k) cmap += entries[k];
    cmap += "endbfchar\n";
  }
  cmap += "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend";

  const int type0 = first + 1;
  const int cid_font = first + 2;
  const int descriptor = first + 3;
  const int font_file_obj = first + 4;
  const int to_unicode = first + 5;
  std::vector<std::string> out;
  out.push_back(stream("/Type /XObject /Subtype /Form /BBox [0 0 " + num(width) + " " +
                           num(height) + "] /Resources << /Font << /F1 " + ref(type0) +
                           " >> /ProcSet [/PDF /Text] >>",
                       content));
  out.push_back("<< /Type /Font /Subtype /Type0 /BaseFont " + base_font +
                " /Encoding /Identity-H /DescendantFonts [" + ref(cid_font) + "] /ToUnicode " +
                ref(to_unicode) + " >>");
  out.push_back("<< /Type /Font /Subtype /CIDFontType2 /BaseFont " + base_font +
                " /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
                " /FontDescriptor " +
                ref(descriptor) + " /DW 1000 /W " + widths + " /CIDToGIDMap /Identity >>");
  out.push_back("<< /Type /FontDescriptor /FontName " + base_font + " /Flags 32 /FontBBox [" +
                num(bbox[0]) + " " + num(bbox[1]) + " " + num(bbox[2]) + " " + num(bbox[3]) +
                "] /ItalicAngle 0 /Ascent " + num(ascent) + " /Descent " + num(descent) +
                " /CapHeight " + num(cap) + " /StemV 80 /FontFile2 " + ref(font_file_obj) + " >>");
  out.push_back(stream("/Filter /FlateDecode /Length1 " + std::to_string(font_bytes.size()),
                       deflate(font_bytes)));
  out.push_back(stream("", cmap));
  return out;
}

}  // namespace kyso::formats::detail
