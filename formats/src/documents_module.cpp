// kyso-formats-documents.so: XML-DSig/XAdES, PAdES and B-LT/B-LTA extension for the agent, loaded
// on first use (kyso/formats/documents.hpp). One exported symbol; everything else is local to the
// module.

#include "kyso/formats/documents.hpp"

namespace {

using namespace kyso;
using namespace kyso::formats;

XmlSigned sign_xml_bytes(Signer& signer, std::span<const std::uint8_t> xml,
                         const XmlSignOptions& options) {
  auto doc = XmlDocument::parse(xml);
  XmlSigned out;
  out.signature_id = doc.sign(signer, options);
  out.document = doc.serialize();
  return out;
}

XmlSigned sign_xml_file(Signer& signer, const std::string& path, const XmlSignOptions& options) {
  auto doc = XmlDocument::load(path);
  XmlSigned out;
  out.signature_id = doc.sign(signer, options);
  out.document = doc.serialize();
  return out;
}

Bytes sign_pdf_bytes(Signer& signer, std::span<const std::uint8_t> pdf,
                     const PdfSignOptions& options, PdfSignResult* result) {
  return sign_pdf(signer, pdf, options, result);
}

PdfSignResult sign_pdf_file(Signer& signer, const std::string& input, const std::string& output,
                            const PdfSignOptions& options) {
  return sign_pdf(signer, input, output, options);
}

ExtendResult extend(const std::string& path, const ExtendOptions& options) {
  return extend_file(path, options);
}

Embedded embed_signature(std::span<const std::uint8_t> state,
                         std::span<const std::uint8_t> signature, const StateKey& key,
                         const EmbedOptions& options) {
  return embed(state, signature, key, options);
}

constexpr DocumentFunctions kFunctions{
    .abi = kDocumentsAbi,
    .size = sizeof(DocumentFunctions),
    .version = KYSO_VERSION_STRING,
    .sign_xml = &sign_xml_bytes,
    .sign_xml_file = &sign_xml_file,
    .sign_pdf = &sign_pdf_bytes,
    .sign_pdf_file = &sign_pdf_file,
    .extend_file = &extend,
    .prepare_xml = &prepare_xml,
    .prepare_pdf = &prepare_pdf,
    .prepare_cms = &prepare_cms,
    .prepare_cms_digest = &prepare_cms_digest,
    .embed = &embed_signature,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const kyso::formats::DocumentFunctions*
kyso_formats_documents_v1() {
  return &kFunctions;
}
