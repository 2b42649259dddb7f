#pragma once
// Inclusive C14N 1.0 of one element's subtree (optionally without one descendant: the enveloped
// signature), streamed into a digest. Shared by signing and verification.

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::formats::detail {

inline constexpr const char* kDsigNs = "http://www.w3.org/2000/09/xmldsig#";
inline constexpr const char* kXadesNs = "http://uri.etsi.org/01903/v1.3.2#";
inline constexpr const char* kXades141Ns = "http://uri.etsi.org/01903/v1.4.1#";
inline constexpr const char* kC14n = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
inline constexpr const char* kC14nComments =
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
inline constexpr const char* kEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Digest of the canonical form of `root`'s subtree minus `exclude`'s subtree.
Bytes c14n_digest(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, HashAlgorithm hash);
/// The same streamed into a digest being computed (several subtrees in a row).
void c14n_update(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, EVP_MD_CTX* md);
/// The canonical bytes themselves (for diagnostics and small subtrees).
std::string c14n_string(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude);
/// c14n_digest for signing: written directly for elements, text and plain attributes (what a
/// transcript and the Signature being built are made of), by libxml2 for anything else.
/// Verification keeps libxml2's, so Kyso's own check stays independent of this one.
Bytes c14n_digest_direct(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, HashAlgorithm hash);
/// The direct canonical form alone; empty when the subtree has what it leaves to libxml2.
std::string c14n_string_direct(xmlNodePtr root, xmlNodePtr exclude);

std::string_view digest_uri(HashAlgorithm h) noexcept;
std::optional<HashAlgorithm> hash_from_uri(std::string_view uri) noexcept;
std::string_view signature_uri(SignAlgorithm a) noexcept;
std::optional<SignAlgorithm> signature_from_uri(std::string_view uri) noexcept;

/// Attribute value or "".
std::string attr(xmlNodePtr node, const char* name);
/// First element child with this local name (any namespace), or nullptr.
xmlNodePtr child(xmlNodePtr node, const char* local_name);
std::string text(xmlNodePtr node);

}  // namespace kyso::formats::detail
