#pragma once
/// @file
/// PAdES baseline B-B and B-T by incremental update: the earlier bytes of the PDF are copied
/// untouched and a new revision is appended with a signature field and widget, the signature
/// dictionary (/ByteRange, /Contents with a detached CAdES signature that has ESS
/// signing-certificate-v2 and no signingTime, as PAdES requires), the updated page and form, and
/// a cross-reference section of the same kind as the file's own (table or stream).
/// Small files are read once and signed in memory; larger ones are streamed through the byte
/// ranges, so a 200 MB PDF is never held in memory.

#include <chrono>
#include <optional>
#include <span>
#include <string>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats {

/// A visible signature box: who signed, in which role and when, in Vietnamese, drawn with an
/// embedded subset of a TrueType font (Type0 / CIDFontType2, Identity-H, ToUnicode) so the
/// diacritics render everywhere and text extraction returns the exact text.
struct PdfVisibleSignature {
  int page = 1;        ///< 1-based page number; 0: the last page
  double x = 36;       ///< lower-left corner, in points from the page's lower-left corner
  double y = 36;       ///<
  double width = 260;  ///< size of the box in points
  double height = 62;  ///<
  std::string name;    ///< "Ký bởi: …"; empty: the certificate's common name
  std::string role;  ///< "Vai trò: …", e.g. "Hiệu trưởng"; empty: guessed from the certificate
  std::string font_file = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
};

struct PdfSignOptions {
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  /// The field's name (/T); empty: "Signature<n>" with the next free n.
  std::string field_name;
  std::string reason;            ///< UTF-8, e.g. "Phê duyệt học bạ"
  std::string location;          ///< UTF-8, e.g. "Hà Nội"
  std::optional<TsaConfig> tsa;  ///< B-T: a signature timestamp in the CMS
  /// A visible box on a page; none: an invisible signature (zero-size widget on page 1).
  std::optional<PdfVisibleSignature> visible;
  /// The signing time (/M and the visible box); none: now. (Two-phase signing and tests fix it.)
  std::optional<std::chrono::system_clock::time_point> time;
};

/// What a signed PDF revision looked like.
struct PdfSignResult {
  std::string field_name;
  std::uint64_t signed_bytes = 0;  ///< the output file's size
};

/// Signs `input` into `output` (which must differ). Throws Error(DocumentInvalid) for a file
/// that is not a PDF or whose cross-reference data is broken, Error(DocumentEncrypted) for an
/// encrypted one; on any failure no output file is left behind.
PdfSignResult sign_pdf(Signer& signer, const std::string& input, const std::string& output,
                       const PdfSignOptions& options);

/// The same for a PDF in memory (e.g. received by the agent in chunks): returns the signed PDF,
/// the input bytes unchanged followed by the new revision. Same errors; `result` (optional)
/// receives the field name and size.
Bytes sign_pdf(Signer& signer, std::span<const std::uint8_t> pdf, const PdfSignOptions& options,
               PdfSignResult* result = nullptr);

}  // namespace kyso::formats
