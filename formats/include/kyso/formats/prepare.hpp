#pragma once
/// @file
/// Two-phase signing: the side that holds the document (a transcript server) prepares it and
/// gets the digest to be signed; the signature is made anywhere (a token through the agent's
/// `hash` item, a remote HSM); the same side embeds it. The same split as EU DSS's
/// getDataToSign / signDocument.
///
/// The single-call functions (sign_cms, XmlDocument::sign, sign_pdf) are these two steps with the
/// signer in between, so both ways produce the same bytes for the same signing time and
/// signature.
///
/// The state is self-contained (the prepared document, the signer's certificate, the digest)
/// and protected by an HMAC-SHA-256 under a key only the preparing and embedding side holds, so
/// the party that signs cannot change what is embedded. embed() refuses:
///  - a state that is not one of ours, was changed or is of an unknown version:
///    Error(PreparedStateInvalid);
///  - a certificate other than the one prepared for: Error(CertificateMismatch);
///  - a signature that does not verify over the prepared digest with the prepared certificate's
///    public key (another digest, another key, garbage): Error(SignatureMismatch).

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/tsa.hpp"
#include "kyso/formats/xml.hpp"

namespace kyso::formats {

/// The HMAC key of prepared states. Keep it on the server; never send it with the digests.
struct StateKey {
  Bytes bytes;  ///< at least 16 bytes; generate() makes 32
  static StateKey generate();
  /// Reads the key file, or creates it (mode 0600, 32 random bytes) when it does not exist.
  static StateKey load_or_create(const std::string& path);
};

enum class PreparedFormat : std::uint8_t { Cms = 1, Xml = 2, Pdf = 3 };
std::string_view to_string(PreparedFormat f) noexcept;  ///< "cms", "xml", "pdf"

/// What prepare gives the server: the digest to send to the signer and the state to keep.
struct Prepared {
  PreparedFormat format = PreparedFormat::Cms;
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  Bytes digest;  ///< to be signed with `algorithm` (a digest of hash_of(algorithm))
  Bytes state;   ///< opaque; give it back to embed()
};

/// The signer as the preparing side knows it: its certificate and issuers, leaf first (DER).
/// Throws Error(CertInvalid) for an empty chain or one that does not parse.
Credential signer_from_chain(std::span<const Bytes> chain_leaf_first);

/// CAdES over `content` (attached or detached per options). options.tsa asks for B-T: the
/// timestamp is fetched at embedding, with EmbedOptions::tsa.
Prepared prepare_cms(std::span<const std::uint8_t> content, const Credential& signer,
                     const CmsOptions& options, const StateKey& key);
/// Detached CAdES over content known only by its digest (of hash_of(options.algorithm)), as
/// sign_cms_digest() signs it; Error(DigestInvalid) for a digest of the wrong length.
Prepared prepare_cms_digest(std::span<const std::uint8_t> content_digest, const Credential& signer,
                            const CmsOptions& options, const StateKey& key);
/// XML-DSig / XAdES, one signature per prepared document.
Prepared prepare_xml(std::span<const std::uint8_t> xml, const Credential& signer,
                     const XmlSignOptions& options, const StateKey& key);
/// PAdES: the new revision with its /Contents placeholder; the state holds the whole PDF.
Prepared prepare_pdf(std::span<const std::uint8_t> pdf, const Credential& signer,
                     const PdfSignOptions& options, const StateKey& key);

struct EmbedOptions {
  /// The certificate the signature came with (a hash item's chain[0]); when given, it must be
  /// the certificate prepared for, else Error(CertificateMismatch).
  std::optional<Bytes> signer_certificate;
  /// Where a state prepared for B-T gets its timestamp (Error(TsaNotConfigured) without it).
  std::optional<TsaConfig> tsa;
};

struct Embedded {
  PreparedFormat format = PreparedFormat::Cms;
  Bytes document;  ///< the signed document (CMS DER, XML, PDF)
  std::string id;  ///< the XML Signature's Id or the PDF field's name; empty for CMS
};

/// Puts `signature` (DER for ECDSA, or raw r||s) into the prepared document.
Embedded embed(std::span<const std::uint8_t> state, std::span<const std::uint8_t> signature,
               const StateKey& key, const EmbedOptions& options = {});

/// What a state says about itself, after its MAC checked out (for listings and the CLI).
struct PreparedInfo {
  PreparedFormat format = PreparedFormat::Cms;
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  Bytes digest;
  Bytes certificate;  ///< the signer's certificate, DER
};
PreparedInfo inspect_prepared(std::span<const std::uint8_t> state, const StateKey& key);

}  // namespace kyso::formats
