#pragma once
// PAdES B-LT and B-LTA revisions: the document security store (/DSS) with validation data, and
// document timestamps (/DocTimeStamp), each appended as an incremental update so every earlier
// signature still covers exactly the revision it signed.

#include <qpdf/QPDF.hh>

#include <span>
#include <string>

#include "kyso/core/bytes.hpp"
#include "kyso/formats/longterm.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats::detail {

/// The PDF followed by a revision whose catalog's /DSS holds the existing DSS's entries plus
/// `added` (each a stream object). No /VRI is written: the DSS-wide lists are what PAdES
/// baseline verifiers use; an existing /VRI is kept as it was.
Bytes append_dss(std::span<const std::uint8_t> pdf, const ValidationData& added);

/// The PDF followed by a revision with a document timestamp over all of it (an invisible
/// field "ArchiveTimestamp<n>", /SubFilter /ETSI.RFC3161). `field_name` (optional) receives its
/// name.
Bytes append_document_timestamp(std::span<const std::uint8_t> pdf, const TsaConfig& tsa,
                                std::string* field_name = nullptr);

/// The certificates, OCSP responses and CRLs of the catalog's /DSS (empty when there is none).
ValidationData read_dss(QPDF& q);

}  // namespace kyso::formats::detail

namespace kyso::formats::detail {

/// A signature field's value: its name, /Contents (a CMS, or a timestamp token for a document
/// timestamp) and which of the two it is.
struct PdfSignatureBlob {
  std::string field;
  Bytes contents;
  bool document_timestamp = false;
};
/// Every signed signature field of the form, in the form's order.
std::vector<PdfSignatureBlob> pdf_signature_blobs(QPDF& q);

}  // namespace kyso::formats::detail
