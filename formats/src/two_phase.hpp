#pragma once
// The two steps every signature is made of (prepare.hpp): each format's first step builds what
// is signed and the digest to sign, its second puts the signature in. The single-call functions
// run them with the signer between; prepare.cpp runs them on two sides with a state between.

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

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

/// A detached CMS as cms_prepare builds it without a signing time, DER, with a stand-in for
/// the messageDigest and an empty signature. For one signer and options, every such CMS differs
/// only in those two values, and the signature is its last element (no unsigned attributes), so
/// embedding fills in a copy instead of building and encoding the CMS again.
struct CmsTemplate {
  Bytes der;
  HashAlgorithm hash = HashAlgorithm::Sha256;
  std::size_t digest_at = 0;  // offset of the messageDigest's value
  std::size_t attrs_at = 0;   // the signed attributes' TLV ([0] IMPLICIT SET OF)
  std::size_t attrs_size = 0;
  /// Header offsets of the TLVs that end with the signature (ContentInfo, [0], SignedData,
  /// signerInfos, SignerInfo), outermost first; the signature's own TLV follows the last one's
  /// other elements at `signature_at`.
  std::vector<std::size_t> enclosing;
  std::size_t signature_at = 0;
  std::size_t max_signature = 0;  // the largest signature value of the key, DER for ECDSA
};
/// Error(Internal) when the options add a signing time, attached content or a timestamp.
CmsTemplate cms_template(const Credential& cred, const CmsOptions& options);
/// The most bytes the template can take filled in: with the key's largest signature, and each
/// DER length that holds the signature grown to its longest.
std::size_t cms_template_max_size(const CmsTemplate& t);
/// cms_template() of the credential for `options`' algorithm and chain flag (its signing time,
/// timestamp and content ignored), built once per process and shared by every signature.
std::shared_ptr<const CmsTemplate> cms_template_for(const Credential& cred,
                                                    const CmsOptions& options);
/// The digest to sign of the template's signed attributes with `content_digest` in them.
Bytes cms_template_tbs(const CmsTemplate& t, std::span<const std::uint8_t> content_digest);
/// The CMS, DER: the template with `content_digest` and `signature` (DER for ECDSA) in it; the
/// same bytes as cms_embed() of cms_prepare() with these values.
Bytes cms_template_fill(const CmsTemplate& t, std::span<const std::uint8_t> content_digest,
                        std::span<const std::uint8_t> signature);

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
  Bytes tbs;                    // the digest to sign: of the CMS's signed attributes
  Bytes content_digest;         // of the byte ranges: the CMS's messageDigest
  std::string field_name;
};
PdfPrepared pdf_prepare(std::span<const std::uint8_t> pdf, const Credential& cred,
                        const PdfSignOptions& options);
/// Writes `contents` as hex after the '<' at `lt`; Error(Internal) when larger than `reserve`.
void write_contents(char* lt, std::size_t reserve, std::span<const std::uint8_t> contents);

}  // namespace kyso::formats::detail
