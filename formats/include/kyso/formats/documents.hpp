#pragma once
/// @file
/// The document formats (XML-DSig/XAdES, PAdES) as a module loaded on first use.
///
/// libxml2, qpdf and HarfBuzz bring GnuTLS, GLib, ICU and FreeType with them: several MB of
/// library pages in every process that links them, although the agent's main path (hash items)
/// needs none of it. So the agent links kyso::formats_base only and loads
/// kyso-formats-documents.so with dlopen() when the first xml or pdf item arrives. The module
/// exports one C function that returns a DocumentFunctions table; the functions in it take and
/// return the same C++ types as xml.hpp and pdf.hpp, so the agent and the module must come from
/// one build (checked: abi, size and version below).
///
/// Errors thrown inside the module (kyso::Error, std::exception) reach the caller as usual: the
/// module's type_info compares equal to the caller's by name (libstdc++), and the module is never
/// unloaded, so the exception's destructor stays mapped.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/extend.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/prepare.hpp"
#include "kyso/formats/xml.hpp"

namespace kyso::formats {

/// Bump whenever DocumentFunctions or a type it passes (XmlSignOptions, PdfSignOptions,
/// ExtendOptions, Prepared, …) changes.
inline constexpr std::uint32_t kDocumentsAbi = 4;
/// The module's exported entry point: `const DocumentFunctions* kyso_formats_documents_v1()`.
inline constexpr const char* kDocumentsEntryPoint = "kyso_formats_documents_v1";
/// Environment variable naming the module's file (after the agent's `formats_module` key).
inline constexpr const char* kDocumentsModuleEnv = "KYSO_FORMATS_MODULE";

/// A signed XML document and the new Signature's Id.
struct XmlSigned {
  Bytes document;
  std::string signature_id;
};

/// What the module provides. Every function may throw kyso::Error like its counterpart in
/// xml.hpp / pdf.hpp.
struct DocumentFunctions {
  std::uint32_t abi;    ///< kDocumentsAbi of the module's build
  std::uint32_t size;   ///< sizeof(DocumentFunctions) in the module's build
  const char* version;  ///< the project version of the module's build
  /// XmlDocument::parse(xml) + sign + serialize.
  XmlSigned (*sign_xml)(Signer& signer, std::span<const std::uint8_t> xml,
                        const XmlSignOptions& options);
  /// XmlDocument::load(path) + sign + serialize.
  XmlSigned (*sign_xml_file)(Signer& signer, const std::string& path,
                             const XmlSignOptions& options);
  /// sign_pdf() in memory.
  Bytes (*sign_pdf)(Signer& signer, std::span<const std::uint8_t> pdf,
                    const PdfSignOptions& options, PdfSignResult* result);
  /// sign_pdf() from file to file.
  PdfSignResult (*sign_pdf_file)(Signer& signer, const std::string& input,
                                 const std::string& output, const PdfSignOptions& options);
  /// extend_file() (extend.hpp): a signed PDF, XML or CMS file to B-LT or B-LTA, in place.
  ExtendResult (*extend_file)(const std::string& path, const ExtendOptions& options);
  /// Two-phase signing (prepare.hpp): the agent signs documents on a remote credential this
  /// way, every digest known before the one authorization. prepare_cms() and prepare_cms_digest()
  /// are here too because prepare.cpp is part of the documents library.
  Prepared (*prepare_xml)(std::span<const std::uint8_t> xml, const Credential& signer,
                          const XmlSignOptions& options, const StateKey& key);
  Prepared (*prepare_pdf)(std::span<const std::uint8_t> pdf, const Credential& signer,
                          const PdfSignOptions& options, const StateKey& key);
  Prepared (*prepare_cms)(std::span<const std::uint8_t> content, const Credential& signer,
                          const CmsOptions& options, const StateKey& key);
  Prepared (*prepare_cms_digest)(std::span<const std::uint8_t> content_digest,
                                 const Credential& signer, const CmsOptions& options,
                                 const StateKey& key);
  Embedded (*embed)(std::span<const std::uint8_t> state, std::span<const std::uint8_t> signature,
                    const StateKey& key, const EmbedOptions& options);
};

/// Where the module is looked for, in order: `configured` when not empty (the agent's
/// `formats_module` key) and nothing else; else $KYSO_FORMATS_MODULE when set and nothing else;
/// else next to the running program (the build tree), then the install layout's libdir/kyso
/// relative to its bindir (the packages: /usr/bin/kyso-agent, /usr/lib/kyso/).
std::vector<std::filesystem::path> documents_module_candidates(const std::string& configured);

/// Loads the module (the first candidate that exists) once per path and process, thread-safe,
/// with RTLD_NOW | RTLD_LOCAL, and returns its table; never unloads it. Throws
/// Error(FormatsUnavailable) naming the paths tried, dlerror() or the version mismatch. A
/// failure is not remembered: the next call tries again (e.g. after the package was repaired).
/// `loaded_from` (optional) receives the file loaded.
const DocumentFunctions& load_documents_module(const std::string& configured,
                                               std::filesystem::path* loaded_from = nullptr);

}  // namespace kyso::formats
