#pragma once
// Document items on the signing desk (desk.cpp): what a job of xml, pdf and cms items needs
// besides its signer (the TSA, the documents module), and one item signed through formats/
// (items.cpp).

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kyso/agent/items.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/documents.hpp"
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
/// `tools.module_error`: those items fail with it, cms items still sign.
void load_documents_module(DocumentTools& tools, const std::vector<Item>& items,
                           const firmware_config::AgentConfig& cfg);

/// Signs one document with `signer` (authorized already); PDFs from an upload are written to
/// a new file in `scratch`.
DocumentOutput sign_document(const std::shared_ptr<Signer>& signer, const DocumentItem& d,
                             SignAlgorithm alg, Role role, const DocumentTools& tools,
                             const std::filesystem::path& scratch);

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
