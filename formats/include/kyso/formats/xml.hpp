#pragma once
/// @file
/// Enveloped XML-DSig in the profile Vietnamese transcript and e-invoice systems use: the
/// Signature sits inside the signed element (or a container the caller names), one Reference to
/// the element's Id with the enveloped-signature and inclusive C14N transforms, an Object with
/// SignatureProperties/SigningTime referenced from SignedInfo, and KeyInfo/X509Data with the
/// certificate. Optionally XAdES baseline B-B / B-T instead of the SigningTime object.
///
/// A document is parsed once and signed many times (a whole school's file: one signature per
/// transcript per role), then written once. Each signature covers only its own element, so a
/// later signature (principal, seal) placed outside what earlier ones cover leaves them valid.

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats {

namespace detail {
struct XmlTwoPhase;
}

enum class XmlLevel {
  Dsig,    ///< the Vietnamese e-invoice profile: SignatureProperties/SigningTime object
  XadesB,  ///< XAdES baseline B-B: SignedProperties (SigningTime, SigningCertificateV2)
  XadesT,  ///< XAdES baseline B-T: B-B plus a SignatureTimeStamp (needs `tsa`)
};

struct XmlSignOptions {
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  /// The element signed: Reference URI="#reference_id".
  std::string reference_id;
  /// The element the Signature goes into; empty: the signed element itself (enveloped).
  std::string parent_id;
  /// If set, an element of this name is created inside the parent and holds the Signature
  /// (a role-named container such as "ChuKyHieuTruong").
  std::string container;
  /// The Signature's Id; empty: "<reference_id>-sig-<random>".
  std::string signature_id;
  XmlLevel level = XmlLevel::Dsig;
  std::optional<TsaConfig> tsa;  ///< required for XadesT
  /// The SigningTime put in; none: now. (Two-phase signing and tests fix it.)
  std::optional<std::chrono::system_clock::time_point> time;
};

/// A parsed XML document being signed.
class XmlDocument {
 public:
  /// Parses UTF-8 XML without network access or external entities. Throws
  /// Error(DocumentInvalid) for malformed XML or duplicate Id attributes.
  static XmlDocument parse(std::span<const std::uint8_t> xml);
  static XmlDocument load(const std::string& path);

  XmlDocument(XmlDocument&&) noexcept;
  XmlDocument& operator=(XmlDocument&&) noexcept;
  XmlDocument(const XmlDocument&) = delete;
  XmlDocument& operator=(const XmlDocument&) = delete;
  ~XmlDocument();

  /// Adds one signature. Returns the Signature's Id.
  std::string sign(Signer& signer, const XmlSignOptions& options);

  /// Values of every Id attribute on elements with this local name, in document order.
  [[nodiscard]] std::vector<std::string> ids_of(std::string_view element_name) const;

  /// The document as UTF-8 bytes (no reformatting: earlier signatures stay valid).
  [[nodiscard]] Bytes serialize() const;
  /// Writes to `path` via a temporary file renamed into place (no half-written output).
  void save(const std::string& path) const;

  struct Impl;

 private:
  // Two-phase signing (prepare.hpp) is these steps; sign() runs them with the signer between.
  struct Pending;
  Pending prepare(const Credential& cred, const XmlSignOptions& options);
  void fill(Pending& pending, std::span<const std::uint8_t> value,
            const std::optional<TsaConfig>& tsa);
  void discard(Pending& pending) noexcept;
  friend struct detail::XmlTwoPhase;

  explicit XmlDocument(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// One-shot: parse, sign once, serialize.
Bytes sign_xml(Signer& signer, std::span<const std::uint8_t> xml, const XmlSignOptions& options);

}  // namespace kyso::formats
