#pragma once
/// @file
/// Document items of `sign` and `batch.sign` (docs/protocol.md, "Document items"): an XML
/// transcript signed with XML-DSig or XAdES in its role's place, a PDF signed with PAdES by
/// incremental update, any bytes signed with CMS/CAdES. The formats library does the signing;
/// this is the protocol side: what an item says, how a signed document goes back.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kyso/agent/uploads.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/pdf.hpp"

namespace kyso::agent {

enum class ItemType { Hash, Xml, Pdf, Cms };

std::string_view to_string(ItemType t) noexcept;

/// Signature levels (ETSI baseline): B-B; B-T with a timestamp from the configured TSA; B-LT
/// adds the validation data (certificates, OCSP/CRL) of the signer's and the TSA's chains; B-LTA
/// adds an archive timestamp over it all. Ordered: each level includes the ones before.
enum class Level { B, T, LT, LTA };

/// "B-B", "B-T", "B-LT", "B-LTA".
std::string_view to_string(Level l) noexcept;

/// What a document item asks for. The content is inline (`bytes`) or an upload (`file`).
struct DocumentItem {
  ItemType type = ItemType::Xml;
  Bytes bytes;
  std::optional<StoredFile> file;
  std::uint64_t size = 0;
  Bytes sha256;  ///< of the content (cms hash-only: the given digest); the approval covers it
  HashAlgorithm digest_algorithm = HashAlgorithm::Sha256;  ///< cms hash-only
  Level level = Level::B;
  // xml
  bool xades = false;        ///< profile xades-b-*; otherwise the xmldsig profile
  std::string reference;     ///< Id of the signed element
  std::string parent;        ///< Id of the element that receives the Signature
  std::string container;     ///< role-named element created inside the parent
  std::string signature_id;  ///< optional Id of the new Signature
  // pdf
  std::string field_name;
  std::string reason;
  std::string location;
  std::optional<formats::PdfVisibleSignature> visible;  ///< a box with name, role and time
  // cms
  bool detached = true;
  bool digest_only = false;  ///< `hash` given instead of content: detached over that digest
};

/// A signed document as it goes back to the page.
struct DocumentOutput {
  Bytes bytes;                     ///< small outputs (and every XML / CMS output)
  std::optional<StoredFile> file;  ///< PDF outputs, on disk in the connection's directory
  std::uint64_t size = 0;
  std::string sha256;        ///< of the signed document, hex
  std::string signature_id;  ///< XML: the new Signature's Id
  std::string field_name;    ///< PDF: the signature field
  Bytes signed_digest;       ///< what the token signed (audited)
  std::string level;         ///< B-LT / B-LTA items: the level reached ("B-LTA"), audited
};

/// Parses the document part of an item of type xml, pdf or cms. `transfers` resolves
/// `uploadId` (nullptr: uploads refused). Throws Error(BadRequest), Error(UploadNotFound),
/// Error(DocumentTooLarge).
std::shared_ptr<const DocumentItem> parse_document(ItemType type, const nlohmann::json& j,
                                                   Transfers* transfers);

/// "[PDF · PAdES B-T · 1.2 MB] " : what the dialog puts before the item's title.
std::string dialog_label(const DocumentItem& d);

/// The item's result fields: {"document": base64} while `inline_budget` allows it (and it is
/// decremented), else {"downloadId", ...} through `transfers`; plus size, sha256 and ids.
nlohmann::json output_json(const DocumentOutput& out, Transfers& transfers,
                           std::size_t& inline_budget);

}  // namespace kyso::agent
