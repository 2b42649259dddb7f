#include "kyso/formats/xml.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "der.hpp"
#include "kyso/core/random.hpp"
#include "two_phase.hpp"
#include "xml_c14n.hpp"

namespace kyso::formats {

using detail::kDsigNs;
using detail::kXadesNs;

namespace {

const xmlChar* X(const char* s) {
  return reinterpret_cast<const xmlChar*>(s);
}
const xmlChar* X(const std::string& s) {
  return X(s.c_str());
}

std::string random_suffix() {
  return to_hex(random_bytes(6));
}

bool is_id_attr(const xmlChar* name) {
  return xmlStrEqual(name, X("Id")) || xmlStrEqual(name, X("ID")) || xmlStrEqual(name, X("id"));
}

}  // namespace

struct XmlDocument::Impl {
  xmlDocPtr doc = nullptr;
  std::unordered_map<std::string, xmlNodePtr> ids;

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;
  ~Impl() {
    if (doc != nullptr) xmlFreeDoc(doc);
  }

  void index(xmlNodePtr node) {
    for (xmlNodePtr n = node; n != nullptr; n = n->next) {
      if (n->type != XML_ELEMENT_NODE) continue;
      for (xmlAttrPtr a = n->properties; a != nullptr; a = a->next) {
        if (a->ns != nullptr || !is_id_attr(a->name)) continue;
        const std::string v = detail::attr(n, reinterpret_cast<const char*>(a->name));
        // Two elements with one Id would let a signature be moved onto other content.
        if (!ids.emplace(v, n).second) {
          throw Error(ErrorCode::DocumentInvalid, "duplicate Id \"" + v + "\" in the XML document");
        }
      }
      index(n->children);
    }
  }

  xmlNodePtr find(const std::string& id) const {
    const auto it = ids.find(id);
    if (it == ids.end()) throw Error(ErrorCode::BadRequest, "no element with Id \"" + id + "\"");
    return it->second;
  }

  void add_id(xmlNodePtr node, const std::string& id) {
    if (!ids.emplace(id, node).second) {
      throw Error(ErrorCode::BadRequest, "Id \"" + id + "\" is already used in the document");
    }
    xmlNewProp(node, X("Id"), X(id));
  }
};

XmlDocument::XmlDocument(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XmlDocument::XmlDocument(XmlDocument&&) noexcept = default;
XmlDocument& XmlDocument::operator=(XmlDocument&&) noexcept = default;
XmlDocument::~XmlDocument() = default;

XmlDocument XmlDocument::parse(std::span<const std::uint8_t> xml) {
  auto impl = std::make_unique<Impl>();
  std::unique_ptr<xmlParserCtxt, FnDeleter<xmlFreeParserCtxt>> ctxt(xmlNewParserCtxt());
  if (!ctxt) throw Error(ErrorCode::Internal, "libxml2 parser context");
  // No network, no external DTD or entity expansion, no noise on stderr.
  impl->doc = xmlCtxtReadMemory(ctxt.get(), reinterpret_cast<const char*>(xml.data()),
                                static_cast<int>(xml.size()), "document.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (impl->doc == nullptr || ctxt->wellFormed == 0 || xmlDocGetRootElement(impl->doc) == nullptr) {
    const xmlError* err = xmlCtxtGetLastError(ctxt.get());
    std::string detail = "not well-formed XML";
    if (err != nullptr && err->message != nullptr) {
      detail += " (line " + std::to_string(err->line) + "): " + err->message;
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
    }
    throw Error(ErrorCode::DocumentInvalid, detail);
  }
  impl->index(xmlDocGetRootElement(impl->doc));
  return XmlDocument(std::move(impl));
}

XmlDocument XmlDocument::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  const Bytes data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse(data);
}

namespace {

xmlNodePtr child_element(xmlNodePtr n, const char* local) {
  for (xmlNodePtr c = n != nullptr ? n->children : nullptr; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, X(local))) return c;
  }
  return nullptr;
}

}  // namespace

// A Signature added to the tree with everything but its SignatureValue (and, for B-T, the
// timestamp over it): the first step of signing.
struct XmlDocument::Pending {
  xmlNodePtr top = nullptr;  // what was added: removed again if signing fails
  std::vector<std::string> new_ids;
  xmlNodePtr signature = nullptr;
  std::string signature_id;
  Bytes tbs;  // the digest of the canonical SignedInfo
};

XmlDocument::Pending XmlDocument::prepare(const Credential& cred, const XmlSignOptions& o) {
  Impl& d = *impl_;
  if (o.level == XmlLevel::XadesT && !o.tsa) {
    throw Error(ErrorCode::BadRequest, "XAdES B-T needs a TSA URL");
  }
  if (is_ecdsa(o.algorithm) != (cred.cert.key_type == "EC")) {
    throw Error(
        ErrorCode::AlgorithmUnsupported,
        std::string(to_string(o.algorithm)) + " does not fit a " + cred.cert.key_type + " key");
  }
  xmlNodePtr ref = d.find(o.reference_id);
  xmlNodePtr parent = o.parent_id.empty() ? ref : d.find(o.parent_id);
  const std::string sig_id =
      o.signature_id.empty() ? o.reference_id + "-sig-" + random_suffix() : o.signature_id;
  if (d.ids.contains(sig_id))
    throw Error(ErrorCode::BadRequest, "Id \"" + sig_id + "\" is already used");
  const HashAlgorithm h = hash_of(o.algorithm);
  const std::string digest_alg(detail::digest_uri(h));
  const std::string now = to_iso8601(o.time.value_or(std::chrono::system_clock::now()));

  // Everything added below hangs off `top`; on any failure it is removed again, so the
  // document is never left half-signed.
  Pending p;
  p.signature_id = sig_id;
  try {
    if (!o.container.empty()) {
      parent = xmlNewChild(parent, parent->ns, X(o.container), nullptr);
      p.top = parent;
    }
    xmlNodePtr sig = xmlNewNode(nullptr, X("Signature"));
    p.signature = sig;
    xmlNsPtr ds = xmlNewNs(sig, X(kDsigNs), nullptr);
    xmlSetNs(sig, ds);
    xmlAddChild(parent, sig);
    if (p.top == nullptr) p.top = sig;
    auto el = [&](xmlNodePtr n, const char* name, xmlNsPtr ns = nullptr) {
      return xmlNewChild(n, ns != nullptr ? ns : ds, X(name), nullptr);
    };
    auto text_el = [&](xmlNodePtr n, const char* name, const std::string& value,
                       xmlNsPtr ns = nullptr) {
      return xmlNewTextChild(n, ns != nullptr ? ns : ds, X(name), X(value));
    };
    auto set_id = [&](xmlNodePtr n, const std::string& id) {
      d.add_id(n, id);
      p.new_ids.push_back(id);
    };
    set_id(sig, sig_id);

    xmlNodePtr si = el(sig, "SignedInfo");
    xmlNewProp(el(si, "CanonicalizationMethod"), X("Algorithm"), X(detail::kC14n));
    xmlNewProp(el(si, "SignatureMethod"), X("Algorithm"),
               X(std::string(detail::signature_uri(o.algorithm))));
    xmlNodePtr r1 = el(si, "Reference");
    xmlNewProp(r1, X("URI"), X("#" + o.reference_id));
    xmlNodePtr tr = el(r1, "Transforms");
    xmlNewProp(el(tr, "Transform"), X("Algorithm"), X(detail::kEnveloped));
    xmlNewProp(el(tr, "Transform"), X("Algorithm"), X(detail::kC14n));
    xmlNewProp(el(r1, "DigestMethod"), X("Algorithm"), X(digest_alg));
    xmlNodePtr dv1 = el(r1, "DigestValue");
    xmlNodePtr r2 = el(si, "Reference");
    xmlNewProp(el(r2, "DigestMethod"), X("Algorithm"), X(digest_alg));
    xmlNodePtr dv2 = el(r2, "DigestValue");
    el(sig, "SignatureValue");
    xmlNodePtr x509 = el(el(sig, "KeyInfo"), "X509Data");
    // The signer's certificate first, then its issuers: a verifier needs only the root.
    text_el(x509, "X509Certificate", to_base64(cred.cert.der));
    for (const auto& ca : cred.chain) text_el(x509, "X509Certificate", to_base64(ca));

    xmlNodePtr object = el(sig, "Object");
    xmlNodePtr covered = nullptr;  // what the second Reference points at
    if (o.level == XmlLevel::Dsig) {
      // The Vietnamese e-invoice / transcript profile: signing time as a signature property.
      const std::string obj_id = sig_id + "-SigningTime";
      set_id(object, obj_id);
      xmlNodePtr prop = el(el(object, "SignatureProperties"), "SignatureProperty");
      xmlNewProp(prop, X("Target"), X("#" + sig_id));
      text_el(prop, "SigningTime", now);
      xmlNewProp(r2, X("URI"), X("#" + obj_id));
      covered = object;
    } else {
      xmlNodePtr qualifying = xmlNewChild(object, nullptr, X("QualifyingProperties"), nullptr);
      xmlNsPtr xa = xmlNewNs(qualifying, X(kXadesNs), X("xades"));
      xmlSetNs(qualifying, xa);
      xmlNewProp(qualifying, X("Target"), X("#" + sig_id));
      xmlNodePtr sp = el(qualifying, "SignedProperties", xa);
      const std::string sp_id = sig_id + "-SignedProperties";
      set_id(sp, sp_id);
      xmlNodePtr ssp = el(sp, "SignedSignatureProperties", xa);
      text_el(ssp, "SigningTime", now, xa);
      xmlNodePtr cert = el(el(ssp, "SigningCertificateV2", xa), "Cert", xa);
      xmlNodePtr cd = el(cert, "CertDigest", xa);
      xmlNewProp(el(cd, "DigestMethod"), X("Algorithm"),
                 X(std::string(detail::digest_uri(HashAlgorithm::Sha256))));
      text_el(cd, "DigestValue", to_base64(sha256(cred.cert.der)));
      X509Ptr x = x509_from_der(cred.cert.der);
      text_el(cert, "IssuerSerialV2", to_base64(detail::issuer_serial(x.get())), xa);
      xmlNewProp(r2, X("Type"), X("http://uri.etsi.org/01903#SignedProperties"));
      xmlNewProp(r2, X("URI"), X("#" + sp_id));
      covered = sp;
    }

    xmlDocPtr doc = d.doc;
    xmlNodeSetContent(dv1, X(to_base64(detail::c14n_digest_direct(doc, ref, sig, h))));
    xmlNodeSetContent(dv2, X(to_base64(detail::c14n_digest_direct(doc, covered, nullptr, h))));
    p.tbs = detail::c14n_digest_direct(doc, si, nullptr, h);
  } catch (...) {
    discard(p);
    throw;
  }
  return p;
}

void XmlDocument::discard(Pending& p) noexcept {
  for (const auto& id : p.new_ids) impl_->ids.erase(id);
  if (p.top != nullptr) {
    xmlUnlinkNode(p.top);
    xmlFreeNode(p.top);
  }
  p = Pending{};
}

// The second step: the signature value (raw r||s for ECDSA) and, with `tsa`, the XAdES
// SignatureTimeStamp over it. A Signature found again in a parsed prepared document works the
// same as one just prepared.
void XmlDocument::fill(Pending& p, std::span<const std::uint8_t> value,
                       const std::optional<TsaConfig>& tsa) {
  xmlNodePtr sv = child_element(p.signature, "SignatureValue");
  if (sv == nullptr) throw Error(ErrorCode::PreparedStateInvalid, "no SignatureValue");
  xmlNodeSetContent(sv, X(to_base64(value)));
  if (!tsa) return;
  xmlNodePtr qualifying =
      child_element(child_element(p.signature, "Object"), "QualifyingProperties");
  if (qualifying == nullptr) throw Error(ErrorCode::PreparedStateInvalid, "no XAdES properties");
  xmlNsPtr xa = qualifying->ns;
  auto el = [&](xmlNodePtr n, const char* name) { return xmlNewChild(n, xa, X(name), nullptr); };
  const std::string sv_c14n = detail::c14n_string(impl_->doc, sv, nullptr);
  const Timestamp ts = request_timestamp(*tsa, detail::as_bytes(sv_c14n));
  xmlNodePtr sts = el(el(el(qualifying, "UnsignedProperties"), "UnsignedSignatureProperties"),
                      "SignatureTimeStamp");
  const std::string sts_id = p.signature_id + "-SignatureTimeStamp";
  impl_->add_id(sts, sts_id);
  p.new_ids.push_back(sts_id);
  xmlNewProp(xmlNewChild(sts, p.signature->ns, X("CanonicalizationMethod"), nullptr),
             X("Algorithm"), X(detail::kC14n));
  xmlNewTextChild(sts, xa, X("EncapsulatedTimeStamp"), X(to_base64(ts.token)));
}

std::string XmlDocument::sign(Signer& signer, const XmlSignOptions& o) {
  Pending p = prepare(signer.credential(), o);
  try {
    const Bytes value = signer.sign_digest(o.algorithm, p.tbs, SignatureEncoding::Raw);
    fill(p, value, o.level == XmlLevel::XadesT ? o.tsa : std::nullopt);
  } catch (...) {
    discard(p);
    throw;
  }
  return p.signature_id;
}

std::vector<std::string> XmlDocument::ids_of(std::string_view element_name) const {
  std::vector<std::string> out;
  std::vector<xmlNodePtr> stack{xmlDocGetRootElement(impl_->doc)};
  while (!stack.empty()) {
    xmlNodePtr n = stack.back();
    stack.pop_back();
    if (n->type != XML_ELEMENT_NODE) continue;
    if (reinterpret_cast<const char*>(n->name) == element_name) {
      const std::string id = detail::attr(n, "Id");
      if (!id.empty()) out.push_back(id);
    }
    std::vector<xmlNodePtr> kids;
    for (xmlNodePtr c = n->children; c != nullptr; c = c->next) kids.push_back(c);
    stack.insert(stack.end(), kids.rbegin(), kids.rend());
  }
  return out;
}

Bytes XmlDocument::serialize() const {
  xmlChar* buf = nullptr;
  int len = 0;
  xmlDocDumpMemoryEnc(impl_->doc, &buf, &len, "UTF-8");
  if (buf == nullptr) throw Error(ErrorCode::Internal, "XML serialization failed");
  Bytes out(buf, buf + len);
  xmlFree(buf);
  return out;
}

void XmlDocument::save(const std::string& path) const {
  const Bytes data = serialize();
  const std::string tmp = path + ".kyso-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    if (!out) throw Error(ErrorCode::DocumentInvalid, "cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

namespace detail {

struct XmlTwoPhase {
  // The prepared document is serialized with a random marker as the SignatureValue's content,
  // which is then cut out and its offset kept: embedding a signature without a timestamp is then
  // putting its base64 there (no second parse and serialization of the document), and gives the
  // same bytes as the single call, which serializes the filled-in tree once.
  static XmlPrepared prepare(std::span<const std::uint8_t> xml, const Credential& cred,
                             const XmlSignOptions& o) {
    XmlDocument doc = XmlDocument::parse(xml);
    XmlDocument::Pending p = doc.prepare(cred, o);
    xmlNodePtr sv = child_element(p.signature, "SignatureValue");
    const std::string marker = "kyso-signature-value-" + to_hex(random_bytes(16));
    xmlNodeSetContent(sv, X(marker));
    XmlPrepared out{doc.serialize(), p.signature_id, p.tbs, std::nullopt};
    const std::string_view text(reinterpret_cast<const char*>(out.document.data()),
                                out.document.size());
    const std::size_t at = text.find(marker);
    if (at == std::string_view::npos || text.find(marker, at + 1) != std::string_view::npos) {
      xmlNodeSetContent(sv, nullptr);  // not found once (cannot happen): embed parses instead
      out.document = doc.serialize();
      return out;
    }
    out.document.erase(out.document.begin() + static_cast<std::ptrdiff_t>(at),
                       out.document.begin() + static_cast<std::ptrdiff_t>(at + marker.size()));
    out.value_at = at;
    return out;
  }

  static bool is_at(std::span<const std::uint8_t> doc, std::size_t at, std::string_view s) {
    return at <= doc.size() && doc.size() - at >= s.size() &&
           std::memcmp(doc.data() + at, s.data(), s.size()) == 0;
  }

  static Bytes embed(std::span<const std::uint8_t> prepared, const std::string& signature_id,
                     std::span<const std::uint8_t> value, const std::optional<TsaConfig>& tsa,
                     std::optional<std::size_t> value_at) {
    if (value_at && !tsa) {
      constexpr std::string_view kOpen = "<SignatureValue>";
      constexpr std::string_view kClose = "</SignatureValue>";
      const std::size_t at = *value_at;
      if (at < kOpen.size() || !is_at(prepared, at - kOpen.size(), kOpen) ||
          !is_at(prepared, at, kClose)) {
        throw Error(ErrorCode::PreparedStateInvalid, "the prepared SignatureValue is missing");
      }
      const std::string b64 = to_base64(value);
      Bytes out;
      out.reserve(prepared.size() + b64.size());
      out.assign(prepared.begin(), prepared.begin() + static_cast<std::ptrdiff_t>(at));
      out.insert(out.end(), b64.begin(), b64.end());
      out.insert(out.end(), prepared.begin() + static_cast<std::ptrdiff_t>(at), prepared.end());
      return out;
    }
    XmlDocument doc = XmlDocument::parse(prepared);
    XmlDocument::Pending p;
    p.signature_id = signature_id;
    const auto it = doc.impl_->ids.find(signature_id);
    if (it == doc.impl_->ids.end() || !xmlStrEqual(it->second->name, X("Signature"))) {
      throw Error(ErrorCode::PreparedStateInvalid, "the prepared Signature is missing");
    }
    p.signature = it->second;
    doc.fill(p, value, tsa);
    return doc.serialize();
  }
};

XmlPrepared xml_prepare(std::span<const std::uint8_t> xml, const Credential& cred,
                        const XmlSignOptions& o) {
  return XmlTwoPhase::prepare(xml, cred, o);
}

Bytes xml_embed(std::span<const std::uint8_t> prepared, const std::string& signature_id,
                std::span<const std::uint8_t> value, const std::optional<TsaConfig>& tsa,
                std::optional<std::size_t> value_at) {
  return XmlTwoPhase::embed(prepared, signature_id, value, tsa, value_at);
}

}  // namespace detail

Bytes sign_xml(Signer& signer, std::span<const std::uint8_t> xml, const XmlSignOptions& options) {
  XmlDocument doc = XmlDocument::parse(xml);
  doc.sign(signer, options);
  return doc.serialize();
}

}  // namespace kyso::formats
