// XAdES long-term pieces shared by verification and `kyso extend`.

#include "xml_longterm.hpp"

#include <libxml/parser.h>

#include "der.hpp"
#include "kyso/formats/tsa.hpp"
#include "tsa_digest.hpp"
#include "xml_c14n.hpp"

namespace kyso::formats::detail {
namespace {

const xmlChar* X(const char* s) {
  return reinterpret_cast<const xmlChar*>(s);
}

bool named(xmlNodePtr n, const char* local) {
  return n != nullptr && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, X(local));
}

bool inside(xmlNodePtr node, xmlNodePtr ancestor) {
  for (; node != nullptr; node = node->parent)
    if (node == ancestor) return true;
  return false;
}

// What a Reference points at, and whether the enveloped transform applies; null when it cannot
// be resolved.
xmlNodePtr reference_target(xmlDocPtr doc, xmlNodePtr ref, const XmlIds& ids, bool& enveloped) {
  const std::string uri = attr(ref, "URI");
  xmlNodePtr target = nullptr;
  if (uri.empty()) {
    target = xmlDocGetRootElement(doc);
  } else if (uri[0] == '#') {
    const auto it = ids.find(uri.substr(1));
    if (it != ids.end()) target = it->second;
  }
  enveloped = false;
  for (xmlNodePtr t = child(child(ref, "Transforms"), "Transform"); t != nullptr; t = t->next) {
    if (named(t, "Transform") && attr(t, "Algorithm") == kEnveloped) enveloped = true;
  }
  return target;
}

void collect_values(xmlNodePtr n, ValidationData& d) {
  for (xmlNodePtr c = n != nullptr ? n->children : nullptr; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    try {
      if (named(c, "EncapsulatedX509Certificate")) {
        d.certs.push_back(b64_text(c));
      } else if (named(c, "EncapsulatedOCSPValue")) {
        d.ocsps.push_back(b64_text(c));
      } else if (named(c, "EncapsulatedCRLValue")) {
        d.crls.push_back(b64_text(c));
      } else {
        collect_values(c, d);
      }
    } catch (const Error&) {
      // not base64: damaged validation data, which the offline check reports as missing
    }
  }
}

}  // namespace

XmlDocPtr parse_xml(std::span<const std::uint8_t> xml) {
  std::unique_ptr<xmlParserCtxt, FnDeleter<xmlFreeParserCtxt>> ctxt(xmlNewParserCtxt());
  if (!ctxt) throw Error(ErrorCode::Internal, "libxml2 parser context");
  XmlDocPtr d(xmlCtxtReadMemory(ctxt.get(), reinterpret_cast<const char*>(xml.data()),
                                static_cast<int>(xml.size()), "document.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!d || ctxt->wellFormed == 0 || xmlDocGetRootElement(d.get()) == nullptr) {
    const xmlError* err = xmlCtxtGetLastError(ctxt.get());
    throw Error(
        ErrorCode::DocumentInvalid,
        std::string("not well-formed XML") +
            (err != nullptr && err->message != nullptr ? ": " + std::string(err->message) : ""));
  }
  return d;
}

bool is_ds(xmlNodePtr n, const char* name) {
  return n != nullptr && n->type == XML_ELEMENT_NODE && n->ns != nullptr &&
         xmlStrEqual(n->ns->href, X(kDsigNs)) && xmlStrEqual(n->name, X(name));
}

Bytes b64_text(xmlNodePtr n) {
  std::string s = text(n);
  std::erase_if(s, [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; });
  return from_base64(s);
}

void index_ids(xmlNodePtr n, XmlIds& ids, std::vector<xmlNodePtr>& sigs) {
  for (; n != nullptr; n = n->next) {
    if (n->type != XML_ELEMENT_NODE) continue;
    for (xmlAttrPtr a = n->properties; a != nullptr; a = a->next) {
      if (a->ns != nullptr) continue;
      if (xmlStrEqual(a->name, X("Id")) || xmlStrEqual(a->name, X("ID")) ||
          xmlStrEqual(a->name, X("id"))) {
        const std::string v = attr(n, reinterpret_cast<const char*>(a->name));
        if (!ids.emplace(v, n).second) {
          throw Error(ErrorCode::DocumentInvalid,
                      "duplicate Id \"" + v + "\": signatures cannot be trusted");
        }
      }
    }
    if (is_ds(n, "Signature")) sigs.push_back(n);
    index_ids(n->children, ids, sigs);
  }
}

bool covers(xmlDocPtr doc, xmlNodePtr outer, xmlNodePtr inner, const XmlIds& ids) {
  if (outer == inner) return false;
  for (xmlNodePtr ref = child(child(outer, "SignedInfo"), "Reference"); ref != nullptr;
       ref = ref->next) {
    if (!is_ds(ref, "Reference")) continue;
    bool enveloped = false;
    xmlNodePtr target = reference_target(doc, ref, ids, enveloped);
    if (target == nullptr || inside(target, outer)) continue;
    if (inside(inner, target)) return true;
  }
  return false;
}

ValidationData xml_validation_data(xmlNodePtr node) {
  ValidationData d;
  collect_values(unsigned_signature_properties(node), d);
  return d;
}

xmlNodePtr unsigned_signature_properties(xmlNodePtr sig) {
  for (xmlNodePtr o = sig != nullptr ? sig->children : nullptr; o != nullptr; o = o->next) {
    if (!is_ds(o, "Object")) continue;
    xmlNodePtr qp = child(o, "QualifyingProperties");
    if (qp != nullptr) return child(child(qp, "UnsignedProperties"), "UnsignedSignatureProperties");
  }
  return nullptr;
}

std::vector<xmlNodePtr> children_named(xmlNodePtr node, const char* local) {
  std::vector<xmlNodePtr> out;
  for (xmlNodePtr c = node != nullptr ? node->children : nullptr; c != nullptr; c = c->next)
    if (named(c, local)) out.push_back(c);
  return out;
}

Bytes archive_digest(xmlDocPtr doc, xmlNodePtr sig, xmlNodePtr before, const XmlIds& ids,
                     HashAlgorithm hash) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  check(md && EVP_DigestInit_ex(md.get(), evp_md(hash), nullptr) == 1, "digest");
  xmlNodePtr si = child(sig, "SignedInfo");
  for (xmlNodePtr ref = child(si, "Reference"); ref != nullptr; ref = ref->next) {
    if (!is_ds(ref, "Reference")) continue;
    bool enveloped = false;
    xmlNodePtr target = reference_target(doc, ref, ids, enveloped);
    if (target == nullptr)
      throw Error(ErrorCode::DocumentInvalid, "a reference of the signature cannot be resolved");
    c14n_update(doc, target, enveloped ? sig : nullptr, md.get());
  }
  for (const char* name : {"SignedInfo", "SignatureValue", "KeyInfo"}) {
    if (xmlNodePtr n = child(sig, name)) c14n_update(doc, n, nullptr, md.get());
  }
  for (xmlNodePtr p = unsigned_signature_properties(sig) != nullptr
                          ? unsigned_signature_properties(sig)->children
                          : nullptr;
       p != nullptr && p != before; p = p->next) {
    if (p->type == XML_ELEMENT_NODE) c14n_update(doc, p, nullptr, md.get());
  }
  for (xmlNodePtr o = sig->children; o != nullptr; o = o->next) {
    if (is_ds(o, "Object") && child(o, "QualifyingProperties") == nullptr)
      c14n_update(doc, o, nullptr, md.get());
  }
  Bytes d(digest_size(hash));
  unsigned int n = 0;
  check(EVP_DigestFinal_ex(md.get(), d.data(), &n) == 1, "digest");
  return d;
}

void covering_timestamps(xmlDocPtr doc, xmlNodePtr sig, const std::vector<xmlNodePtr>& sigs,
                         const XmlIds& ids, std::vector<Bytes>& proofs,
                         std::vector<Bytes>& archives) {
  for (xmlNodePtr t : sigs) {
    if (t != sig && !covers(doc, t, sig, ids)) continue;
    xmlNodePtr usp = unsigned_signature_properties(t);
    std::string why;
    if (t != sig) {
      // Another signature's own timestamp proves what it signed (this one included) existed.
      for (xmlNodePtr st : children_named(usp, "SignatureTimeStamp")) {
        const Bytes token = b64_text(child(st, "EncapsulatedTimeStamp"));
        const std::string sv = c14n_string(doc, child(t, "SignatureValue"), nullptr);
        if (verify_timestamp(token, as_bytes(sv), {}, why)) proofs.push_back(token);
      }
    }
    for (xmlNodePtr at : children_named(usp, "ArchiveTimeStamp")) {
      try {
        const Bytes token = b64_text(child(at, "EncapsulatedTimeStamp"));
        if (detail::verify_timestamp_digest(
                token, [&](HashAlgorithm h) { return archive_digest(doc, t, at, ids, h); }, {},
                why)) {
          archives.push_back(token);
        }
      } catch (const Error&) {
        // a damaged archive timestamp proves nothing
      }
    }
  }
}

}  // namespace kyso::formats::detail
