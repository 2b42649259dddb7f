// XML-DSig / XAdES verification with the same inclusive C14N the signer uses.

#include <libxml/parser.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <unordered_map>

#include "der.hpp"
#include "kyso/formats/tsa.hpp"
#include "verify_common.hpp"
#include "xml_c14n.hpp"
#include "xml_longterm.hpp"

namespace kyso::formats::detail {
namespace {

xmlNodePtr find_desc(xmlNodePtr n, const char* local) {
  if (n == nullptr) return nullptr;
  for (xmlNodePtr c = n->children; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(local))) return c;
    if (xmlNodePtr f = find_desc(c, local)) return f;
  }
  return nullptr;
}

bool verify_value(const Bytes& cert_der, SignAlgorithm alg, const Bytes& tbs, const Bytes& sig) {
  X509Ptr cert = x509_from_der(cert_der);
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(X509_get0_pubkey(cert.get()), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(hash_of(alg))) != 1) {
    return false;
  }
  if (is_pss(alg)) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST);
  } else if (is_rsa(alg)) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  }
  const Bytes s = is_ecdsa(alg) ? ecdsa_raw_to_der(sig) : sig;
  const bool ok = EVP_PKEY_verify(ctx.get(), s.data(), s.size(), tbs.data(), tbs.size()) == 1;
  openssl_error();
  return ok;
}

// XAdES: SignedProperties must be signed, and its SigningCertificateV2 (or the older
// SigningCertificate) must name the certificate that verifies the signature value, so that a
// certificate swapped into KeyInfo (same key, other holder or issuer) is caught.
void check_signing_certificate(SignatureReport& r, xmlNodePtr sig, const Bytes& cert_der,
                               const std::vector<xmlNodePtr>& signed_nodes) {
  r.signing_certificate = CheckStatus::Failed;
  xmlNodePtr sp = find_desc(sig, "SignedProperties");
  if (sp == nullptr) {
    r.signing_certificate_detail = "XAdES signature without SignedProperties";
    return;
  }
  if (std::ranges::find(signed_nodes, sp) == signed_nodes.end()) {
    r.signing_certificate_detail = "SignedProperties is not covered by a verified reference";
    return;
  }
  xmlNodePtr v2 = find_desc(sp, "SigningCertificateV2");
  xmlNodePtr holder = v2 != nullptr ? v2 : find_desc(sp, "SigningCertificate");
  if (holder == nullptr) {
    r.signing_certificate_detail = "no SigningCertificateV2 in SignedProperties";
    return;
  }
  const X509Ptr cert = x509_from_der(cert_der);
  const Bytes issuer_serial_der = issuer_serial(cert.get());
  for (xmlNodePtr c = holder->children; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE ||
        !xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>("Cert")))
      continue;
    xmlNodePtr cd = child(c, "CertDigest");
    const auto h = hash_from_uri(attr(child(cd, "DigestMethod"), "Algorithm"));
    xmlNodePtr dv = child(cd, "DigestValue");
    if (!h || dv == nullptr || digest(openssl_md_name(*h), cert_der) != b64_text(dv)) continue;
    if (xmlNodePtr is = child(c, "IssuerSerialV2");
        is != nullptr && b64_text(is) != issuer_serial_der) {
      r.signing_certificate_detail =
          "IssuerSerialV2 in SigningCertificateV2 does not match the signing certificate";
      return;
    }
    r.signing_certificate = CheckStatus::Ok;
    r.signing_certificate_detail = v2 != nullptr ? "SigningCertificateV2" : "SigningCertificate";
    return;
  }
  r.signing_certificate_detail =
      std::string(v2 != nullptr ? "SigningCertificateV2" : "SigningCertificate") +
      " does not name the certificate in KeyInfo (certificate digest differs)";
}

SignatureReport verify_one(xmlDocPtr doc, xmlNodePtr sig, const XmlIds& ids,
                           const LongTermInputs& document, const VerifyOptions& o) {
  SignatureReport r;
  r.id = attr(sig, "Id");
  r.format = find_desc(sig, "QualifyingProperties") != nullptr ? "xades" : "xmldsig";
  if (xmlNodePtr st = find_desc(sig, "SigningTime")) r.signing_time = parse_iso8601(text(st));
  xmlNodePtr si = child(sig, "SignedInfo");
  xmlNodePtr sv = child(sig, "SignatureValue");
  xmlNodePtr certs_node = find_desc(sig, "X509Data");
  Bytes cert_der;
  std::vector<Bytes> extra;
  for (xmlNodePtr c = certs_node != nullptr ? certs_node->children : nullptr; c != nullptr;
       c = c->next) {
    if (is_ds(c, "X509Certificate"))
      (cert_der.empty() ? cert_der : extra.emplace_back()) = b64_text(c);
  }
  const std::string cm = attr(child(si, "CanonicalizationMethod"), "Algorithm");
  const auto alg = signature_from_uri(attr(child(si, "SignatureMethod"), "Algorithm"));
  r.algorithm = attr(child(si, "SignatureMethod"), "Algorithm");
  if (si == nullptr || sv == nullptr || cert_der.empty()) {
    r.integrity_detail = "incomplete Signature (SignedInfo, SignatureValue or certificate missing)";
    r.integrity_failure = IntegrityFailure::Format;
    return r;
  }
  if (cm != kC14n || !alg) {
    r.integrity_detail = "unsupported canonicalization or signature method";
    r.integrity_failure = IntegrityFailure::Format;
    return r;
  }
  bool refs_ok = true;
  bool covers_content = false;
  std::vector<xmlNodePtr> signed_nodes;
  std::string covered;
  for (xmlNodePtr ref = si->children; ref != nullptr; ref = ref->next) {
    if (!is_ds(ref, "Reference")) continue;
    const std::string uri = attr(ref, "URI");
    xmlNodePtr target = nullptr;
    if (uri.empty()) {
      target = xmlDocGetRootElement(doc);
    } else if (uri[0] == '#' && ids.contains(uri.substr(1))) {
      target = ids.at(uri.substr(1));
    }
    bool enveloped = false;
    bool transforms_ok = true;
    for (xmlNodePtr t = child(child(ref, "Transforms"), "Transform"); t != nullptr; t = t->next) {
      if (t->type != XML_ELEMENT_NODE) continue;
      const std::string a = attr(t, "Algorithm");
      if (a == kEnveloped)
        enveloped = true;
      else if (a != kC14n)
        transforms_ok = false;
    }
    const auto h = hash_from_uri(attr(child(ref, "DigestMethod"), "Algorithm"));
    if (target == nullptr || !transforms_ok || !h) {
      refs_ok = false;
      r.integrity_detail =
          "reference " + uri + " cannot be resolved or uses an unsupported transform";
      r.integrity_failure = IntegrityFailure::Format;
      break;
    }
    const Bytes want = b64_text(child(ref, "DigestValue"));
    if (c14n_digest(doc, target, enveloped ? sig : nullptr, *h) != want) {
      refs_ok = false;
      r.integrity_detail = "digest of " + uri + " does not match: the content was changed";
      r.integrity_failure = IntegrityFailure::Digest;
      break;
    }
    signed_nodes.push_back(target);
    bool inside_sig = false;
    for (xmlNodePtr p = target; p != nullptr; p = p->parent) inside_sig = inside_sig || p == sig;
    if (!inside_sig) {
      covers_content = true;
      covered += (covered.empty() ? "" : " ") + uri;
    }
  }
  if (refs_ok && !covers_content) {
    refs_ok = false;
    r.integrity_detail = "the signature covers nothing outside itself";
    r.integrity_failure = IntegrityFailure::Format;
  }
  if (refs_ok) {
    const Bytes tbs = c14n_digest(doc, si, nullptr, hash_of(*alg));
    if (verify_value(cert_der, *alg, tbs, b64_text(sv))) {
      r.integrity = true;
      r.integrity_detail = "covers " + covered;
    } else {
      r.integrity_detail = "signature value invalid";
      r.integrity_failure = IntegrityFailure::SignatureValue;
    }
  }
  LongTermInputs lt = document;
  if (xmlNodePtr ts = find_desc(find_desc(sig, "SignatureTimeStamp"), "EncapsulatedTimeStamp")) {
    const std::string sv_c14n = c14n_string(doc, sv, nullptr);
    read_signature_timestamp(r, lt, b64_text(ts), as_bytes(sv_c14n), o);
  }
  if (r.format == "xades" && refs_ok) check_signing_certificate(r, sig, cert_der, signed_nodes);
  judge_long_term(r, cert_der, extra, lt, o);
  return r;
}

}  // namespace

std::vector<SignatureReport> verify_xml(const Bytes& xml, const VerifyOptions& o) {
  const XmlDocPtr d = parse_xml(xml);
  XmlIds ids;
  std::vector<xmlNodePtr> sigs;
  index_ids(xmlDocGetRootElement(d.get()), ids, sigs);
  LongTermInputs document;
  for (xmlNodePtr s : sigs) document.data.merge(xml_validation_data(s));
  document.claims_long_term = !document.data.empty();
  std::vector<SignatureReport> out;
  for (xmlNodePtr s : sigs) {
    LongTermInputs lt = document;
    covering_timestamps(d.get(), s, sigs, ids, lt.time_proofs, lt.archive_timestamps);
    out.push_back(verify_one(d.get(), s, ids, lt, o));
  }
  return out;
}

}  // namespace kyso::formats::detail
