#pragma once
// What a signature's new revision (pdf.cpp) needs to know about the PDF it extends: the trailer's
// keys, the catalog, the page the widget goes on and the form's fields, each as PDF text ready to
// be written into the update. qpdf reads them from any PDF; read_plain_pdf reads them directly
// from the common case (classic cross-reference tables, the objects needed uncompressed and
// unencrypted), at a fraction of qpdf's cost (bench/format-sign: a transcript's update was most
// of a PAdES signature's work outside the token).

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pdf_scan.hpp"

namespace kyso::formats::detail {

/// A dictionary as PDF text: (key with its '/', value), in the file's order.
using PdfDictText = std::vector<std::pair<std::string, std::string>>;

struct PdfObjRef {
  int num = 0;
  int gen = 0;
};

struct PdfFacts {
  int size = 0;            ///< the trailer's /Size: the first free object number
  PdfObjRef root;          ///< the catalog
  PdfDictText root_dict;   ///< its entries
  std::string info;        ///< the trailer's /Info as PDF text, empty when absent
  std::string id;          ///< the trailer's /ID as PDF text, empty when absent
  bool acro_form = false;  ///< the catalog has an /AcroForm dictionary
  bool acro_indirect = false;
  PdfObjRef acro;         ///< when acro_indirect
  PdfDictText acro_dict;  ///< its entries
  std::string fields;     ///< the items of /Fields as PDF text, each followed by a space
  std::set<std::string> field_names;  ///< the /T (UTF-8) of the top-level fields
  PdfObjRef page;                     ///< the page the widget goes on
  PdfDictText page_dict;              ///< its entries
  std::string annots;                 ///< the items of its /Annots, each followed by a space
  double media_llx = 0;  ///< the lower-left corner of its MediaBox (visible signatures)
  double media_lly = 0;
};

/// The facts of an unencrypted PDF whose cross-reference sections are all classic tables and
/// whose catalog, page tree, form and fields are plain indirect objects (no object streams, no
/// comments inside them), with an invisible signature's page (the first). nullopt for
/// anything else, which qpdf then reads (and refuses, for a damaged or encrypted file).
std::optional<PdfFacts> read_plain_pdf(std::string_view pdf, const PdfSource& src);

/// "N G R".
std::string ref_text(const PdfObjRef& r);

}  // namespace kyso::formats::detail
