#pragma once
/// @file
/// PAdES baseline B-B and B-T by incremental update: the earlier bytes of the PDF are copied
/// untouched and a new revision is appended with a signature field and widget, the signature
/// dictionary (/ByteRange, /Contents with a detached CAdES signature that has ESS
/// signing-certificate-v2 and no signingTime, as PAdES requires), the updated page and form, and
/// a cross-reference section of the same kind as the file's own (table or stream).
/// The byte ranges are hashed while the file is copied, so a 200 MB PDF is never held in memory.

#include <optional>
#include <string>

#include "kyso/core/signer.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats {

struct PdfSignOptions {
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  /// The field's name (/T); empty: "Signature<n>" with the next free n.
  std::string field_name;
  std::string reason;            ///< UTF-8, e.g. "Phê duyệt học bạ"
  std::string location;          ///< UTF-8, e.g. "Hà Nội"
  std::optional<TsaConfig> tsa;  ///< B-T: a signature timestamp in the CMS
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

}  // namespace kyso::formats
