#pragma once
// The two steps every signature is made of (prepare.hpp): each format's first step builds what
// is signed and the digest to sign, its second puts the signature in. The single-call functions
// run them with the signer between; prepare.cpp runs them on two sides with a state between.

#include <optional>
#include <span>
#include <string>

#include "der.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/tsa.hpp"
#include "kyso/formats/xml.hpp"

namespace kyso::formats::detail {

/// A CMS SignedData with its signed attributes and an empty signature value.
struct CmsPending {
  CmsPtr cms;
  CMS_SignerInfo* si = nullptr;  // owned by cms
  Bytes tbs;                     // the digest of the DER signed attributes
};
CmsPending cms_prepare(const Credential& cred, std::span<const std::uint8_t> content_digest,
                       std::optional<std::span<const std::uint8_t>> attached,
                       const CmsOptions& options);
/// Sets the signature value (DER for ECDSA) and, with `tsa`, adds the signature timestamp;
/// returns the CMS, DER.
Bytes cms_embed(CmsPending& pending, std::span<const std::uint8_t> signature,
                const std::optional<TsaConfig>& tsa);
Bytes cms_pending_der(const CmsPending& pending);
/// Error(PreparedStateInvalid) unless it parses with exactly one SignerInfo.
CmsPending cms_pending_from_der(std::span<const std::uint8_t> der);

/// An XML document with one Signature whose SignatureValue is empty.
struct XmlPrepared {
  Bytes document;
  std::string signature_id;
  Bytes tbs;  // the digest of the canonical SignedInfo
  /// Offset in `document` of the empty SignatureValue's content (between its tags).
  std::optional<std::size_t> value_at;
};
XmlPrepared xml_prepare(std::span<const std::uint8_t> xml, const Credential& cred,
                        const XmlSignOptions& options);
/// Fills the Signature `signature_id` of a prepared document with `value` (raw r||s for ECDSA)
/// and, with `tsa`, its XAdES SignatureTimeStamp; returns the signed document. Without `tsa`
/// and with `value_at` (from xml_prepare), the value's base64 is put at that offset.
Bytes xml_embed(std::span<const std::uint8_t> prepared, const std::string& signature_id,
                std::span<const std::uint8_t> value, const std::optional<TsaConfig>& tsa,
                std::optional<std::size_t> value_at = std::nullopt);

/// A PDF with its new revision, /Contents still zeros, and the CMS to go there.
struct PdfPrepared {
  Bytes document;
  std::size_t contents_at = 0;  // offset of /Contents' '<'
  std::size_t reserve = 0;      // bytes of room for the CMS (2 hex digits each)
  CmsPending cms;
  Bytes content_digest;  // of the byte ranges: the CMS's messageDigest
  std::string field_name;
};
PdfPrepared pdf_prepare(std::span<const std::uint8_t> pdf, const Credential& cred,
                        const PdfSignOptions& options);
/// Writes `contents` as hex after the '<' at `lt`; Error(Internal) when larger than `reserve`.
void write_contents(char* lt, std::size_t reserve, std::span<const std::uint8_t> contents);

}  // namespace kyso::formats::detail
