#pragma once
// XAdES B-LT and B-LTA: validation data in xades:CertificateValues / xades:RevocationValues (and
// xadesv141:TimeStampValidationData once an archive timestamp exists), archive timestamps
// (xadesv141:ArchiveTimeStamp), and which signatures cover which.
//
// A signature another one covers (the teacher's, inside what the principal and the seal sign)
// cannot be changed without breaking the later ones, so validation data and archive timestamps
// always go into the signatures no other signature covers; they cover the inner ones.

#include <libxml/tree.h>

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/formats/longterm.hpp"

namespace kyso::formats::detail {

using XmlIds = std::unordered_map<std::string, xmlNodePtr>;
using XmlDocPtr = std::unique_ptr<xmlDoc, FnDeleter<xmlFreeDoc>>;

/// Parses without network access, external entities or noise; Error(DocumentInvalid) for XML
/// that is not well-formed.
XmlDocPtr parse_xml(std::span<const std::uint8_t> xml);

/// A ds:* element of this local name.
bool is_ds(xmlNodePtr n, const char* name);

/// An element's text as base64 (whitespace ignored), decoded.
Bytes b64_text(xmlNodePtr n);

/// Indexes Id/ID/id attributes (duplicates: Error(DocumentInvalid)) and collects ds:Signature
/// elements in document order.
void index_ids(xmlNodePtr n, XmlIds& ids, std::vector<xmlNodePtr>& sigs);

/// Whether `outer` covers `inner`: `inner` lies in what one of `outer`'s references points at.
bool covers(xmlDocPtr doc, xmlNodePtr outer, xmlNodePtr inner, const XmlIds& ids);

/// Every certificate, OCSP response and CRL in the XAdES values under `node`.
ValidationData xml_validation_data(xmlNodePtr node);

/// Digest (of `hash`) of what an ArchiveTimeStamp of `sig` placed before `before` (null: at the
/// end) covers (EN 319 132-1 5.5.2, inclusive C14N): each Reference's data after its transforms,
/// SignedInfo, SignatureValue, KeyInfo, the unsigned signature properties before `before`, and
/// the ds:Objects other than the one holding QualifyingProperties.
Bytes archive_digest(xmlDocPtr doc, xmlNodePtr sig, xmlNodePtr before, const XmlIds& ids,
                     HashAlgorithm hash);

/// Timestamp tokens over `sig`, each checked (imprint and TSA signature): the signature
/// timestamps of the signatures covering it (`proofs`), and their and its own archive
/// timestamps (`archives`).
void covering_timestamps(xmlDocPtr doc, xmlNodePtr sig, const std::vector<xmlNodePtr>& sigs,
                         const XmlIds& ids, std::vector<Bytes>& proofs,
                         std::vector<Bytes>& archives);

/// The xades:UnsignedSignatureProperties of `sig`, or null.
xmlNodePtr unsigned_signature_properties(xmlNodePtr sig);

/// Element children of `node` with this local name, in order.
std::vector<xmlNodePtr> children_named(xmlNodePtr node, const char* local);

}  // namespace kyso::formats::detail
