#pragma once
// Document items on the signing desk (desk.cpp): what a job of xml, pdf and cms items needs
// besides its signer (the TSA, the documents module), and one item signed through formats/
// (items.cpp).

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kyso/agent/items.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/documents.hpp"
#include "kyso/formats/prepare.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::agent {

struct DocumentTools {
  std::optional<formats::TsaConfig> tsa;  ///< set when an item is B-T or above
  /// Set when an item is B-LT or B-LTA: IT's anchors and OCSP URL, to build the chains and fetch
  /// the validation data added after signing (as `kyso extend` does).
  std::optional<formats::TrustConfig> long_term;
  /// kyso-formats-documents.so (xml and pdf), or why it could not be loaded.
  const formats::DocumentFunctions* module = nullptr;
  std::optional<Error> module_error;
};

/// xml and pdf items are signed by kyso-formats-documents.so, cms items in the agent itself;
/// B-LT and B-LTA items of every type are extended by the module.
bool needs_documents_module(const Item& item) noexcept;

/// The TSA when an item is B-T or above; throws Error(TsaNotConfigured) when none is configured.
std::optional<formats::TsaConfig> tsa_for(const std::vector<Item>& items,
                                          const firmware_config::AgentConfig& cfg);

/// The trust to collect validation data with when an item is B-LT or B-LTA; throws
/// Error(NotSupported) when IT configured no trust anchors (no chain can be archived).
std::optional<formats::TrustConfig> long_term_for(const std::vector<Item>& items,
                                                  const firmware_config::AgentConfig& cfg);

/// Loads the documents module when an item needs it (kept once loaded); a failure is kept in
/// `tools.module_error`: those items fail with it, cms items still sign. `every_document`: every
/// document item needs it (a remote credential: cms items are prepared by the module too).
void load_documents_module(DocumentTools& tools, const std::vector<Item>& items,
                           const firmware_config::AgentConfig& cfg, bool every_document = false);

/// Signs one document with `signer` (authorized already); PDFs from an upload are written to
/// a new file in `scratch`.
DocumentOutput sign_document(const std::shared_ptr<Signer>& signer, const DocumentItem& d,
                             SignAlgorithm alg, Role role, const DocumentTools& tools,
                             const std::filesystem::path& scratch);

/// A document prepared for a remote credential (two-phase signing, kyso/formats/prepare.hpp):
/// the digest its one authorization covers, and the state embed_document() finishes it from.
/// A remote (CSC, SCAL2) authorization binds exactly the digests shown before signing, so every
/// document of a job is prepared before the dialog.
struct PreparedDocument {
  Bytes digest;
  Bytes state;  ///< MACed under the job's own StateKey, which never leaves the agent
};

/// Prepares `d` for `cred` (its certificate and chain) with `alg`, signing time `time` (one for
/// the job) and `role` (the PDF's reason and visible box), through the documents module (cms
/// too). Throws what the document is wrong about (DocumentInvalid, DocumentEncrypted,
/// BadRequest for an Id not found, ...) or the module's error when it could not be loaded.
PreparedDocument prepare_document(const DocumentItem& d, const Credential& cred, SignAlgorithm alg,
                                  Role role, const DocumentTools& tools,
                                  std::chrono::system_clock::time_point time,
                                  const formats::StateKey& key);

/// Puts the remote service's `signature` over `p.digest` into the prepared document (refused
/// unless it verifies with the prepared certificate: Error(SignatureMismatch)), adds the B-T
/// timestamp and extends to B-LT/B-LTA as sign_document() does. An uploaded PDF's output is a
/// new file in `scratch`.
DocumentOutput embed_document(const PreparedDocument& p, std::span<const std::uint8_t> signature,
                              const DocumentItem& d, const DocumentTools& tools,
                              const formats::StateKey& key, const std::filesystem::path& scratch);

/// Whether the document can be signed as asked, before the user is asked anything: xml and pdf
/// items go through the documents module up to the point of signing (parsed, reference and
/// place found, PDF revision prepared) with a signer that stops there. Returns the
/// Error(DocumentInvalid), Error(DocumentEncrypted) or Error(BadRequest) (no element with the
/// item's Id) the signing would meet; nothing for cms items or when the module is not loaded.
std::optional<Error> check_document(const DocumentItem& d, const Credential& cred,
                                    SignAlgorithm alg, Role role, const DocumentTools& tools,
                                    const std::filesystem::path& scratch);

/// What a document item's audit row says besides its digest and result.
std::string audit_detail(const Item& item, const std::optional<DocumentOutput>& out,
                         const SignResult& result);

}  // namespace kyso::agent
