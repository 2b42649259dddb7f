// XML as the formats code reads it (XmlDocument::parse: no network, no external entities,
// duplicate Ids refused) and Kyso's own C14N 1.0 (formats/src/xml_c14n.cpp) of the root and of
// every element carrying an Id, with the first Signature element left out as an enveloped
// signature is. Differential: wherever signing's direct C14N produces a form, it must be
// libxml2's byte for byte.

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <memory>
#include <string>

#include "fuzz_support.hpp"
#include "kyso/core/error.hpp"
#include "kyso/formats/xml.hpp"
#include "xml_c14n.hpp"

namespace {

xmlNodePtr find_signature(xmlNodePtr node) {
  for (xmlNodePtr n = node; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (xmlStrEqual(n->name, BAD_CAST "Signature")) return n;
    if (xmlNodePtr s = find_signature(n->children)) return s;
  }
  return nullptr;
}

void same_as_libxml2(xmlDocPtr doc, xmlNodePtr n, xmlNodePtr exclude) {
  const std::string libxml2 = kyso::formats::detail::c14n_string(doc, n, exclude);
  const std::string direct = kyso::formats::detail::c14n_string_direct(n, exclude);
  if (!direct.empty() && direct != libxml2) __builtin_trap();
}

void canonicalize_ids(xmlDocPtr doc, xmlNodePtr node, xmlNodePtr exclude, int& budget) {
  for (xmlNodePtr n = node; n != nullptr && budget > 0; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    if (xmlHasProp(n, BAD_CAST "Id") != nullptr) {
      --budget;
      same_as_libxml2(doc, n, exclude);
    }
    canonicalize_ids(doc, n->children, exclude, budget);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto parsed = kyso::formats::XmlDocument::parse({data, size});
    (void)parsed.ids_of("Signature");
    (void)parsed.serialize();
  } catch (const kyso::Error&) {
  }
  // The same bytes through the canonicalizer, parsed as the signing and verifying code parse.
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
      xmlReadMemory(reinterpret_cast<const char*>(data), static_cast<int>(size), "fuzz.xml",
                    nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
      &xmlFreeDoc);
  if (!doc) return 0;
  xmlNodePtr root = xmlDocGetRootElement(doc.get());
  if (root == nullptr) return 0;
  try {
    xmlNodePtr sig = find_signature(root);
    same_as_libxml2(doc.get(), root, nullptr);
    same_as_libxml2(doc.get(), root, sig);
    (void)kyso::formats::detail::c14n_digest(doc.get(), root, sig, kyso::HashAlgorithm::Sha256);
    int budget = 16;
    canonicalize_ids(doc.get(), root, sig, budget);
  } catch (const kyso::Error&) {
  }
  return 0;
}
