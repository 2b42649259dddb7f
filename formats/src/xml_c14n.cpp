#include "xml_c14n.hpp"

#include <libxml/c14n.h>
#include <libxml/xmlIO.h>

#include <array>

namespace kyso::formats::detail {
namespace {

struct Scope {
  xmlNodePtr root;
  xmlNodePtr exclude;
};

// Node-set membership for libxml2's C14N: the subtree of `root` minus that of `exclude`.
// Namespace and attribute nodes belong where their element belongs.
int visible(void* user, xmlNodePtr node, xmlNodePtr parent) {
  const auto* s = static_cast<const Scope*>(user);
  xmlNodePtr n =
      (node->type == XML_NAMESPACE_DECL || node->type == XML_ATTRIBUTE_NODE) ? parent : node;
  for (; n != nullptr; n = n->parent) {
    if (n == s->exclude) return 0;
    if (n == s->root) return 1;
  }
  return 0;
}

// Runs C14N over the subtree only. libxml2 walks from doc->children; to avoid walking a whole
// school's file for every transcript, the walk starts at `root` through a shallow copy of the
// document whose only child is `root` (detached from its siblings for the duration). Ancestors
// stay reachable through parent pointers, which is where inclusive C14N takes the in-scope
// namespaces and xml:* attributes of the apex element from.
bool run_c14n(xmlDocPtr doc, const Scope& scope, xmlOutputBufferPtr out) {
  xmlNodePtr root = scope.root;
  xmlDoc shallow = *doc;
  shallow.children = root;
  shallow.last = root;
  xmlNodePtr next = root->next;
  xmlNodePtr prev = root->prev;
  root->next = nullptr;
  root->prev = nullptr;
  const int rc =
      xmlC14NExecute(&shallow, visible, const_cast<Scope*>(&scope), XML_C14N_1_0, nullptr, 0, out);
  root->next = next;
  root->prev = prev;
  return rc >= 0;
}

int hash_write(void* ctx, const char* buf, int len) {
  return EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx), buf, static_cast<std::size_t>(len)) == 1
             ? len
             : -1;
}

int string_write(void* ctx, const char* buf, int len) {
  static_cast<std::string*>(ctx)->append(buf, static_cast<std::size_t>(len));
  return len;
}

}  // namespace

Bytes c14n_digest(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, HashAlgorithm hash) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  if (!md ||
      EVP_DigestInit_ex(md.get(), EVP_get_digestbyname(openssl_md_name(hash)), nullptr) != 1) {
    throw Error(ErrorCode::Internal, "digest init: " + openssl_error());
  }
  xmlOutputBufferPtr out = xmlOutputBufferCreateIO(hash_write, nullptr, md.get(), nullptr);
  const Scope scope{root, exclude};
  const bool ok = run_c14n(doc, scope, out);
  const int closed = xmlOutputBufferClose(out);
  if (!ok || closed < 0) throw Error(ErrorCode::DocumentInvalid, "XML canonicalization failed");
  Bytes d(digest_size(hash));
  unsigned int n = 0;
  EVP_DigestFinal_ex(md.get(), d.data(), &n);
  return d;
}

void c14n_update(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, EVP_MD_CTX* md) {
  xmlOutputBufferPtr out = xmlOutputBufferCreateIO(hash_write, nullptr, md, nullptr);
  const Scope scope{root, exclude};
  const bool ok = run_c14n(doc, scope, out);
  if (xmlOutputBufferClose(out) < 0 || !ok) {
    throw Error(ErrorCode::DocumentInvalid, "XML canonicalization failed");
  }
}

std::string c14n_string(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude) {
  std::string s;
  xmlOutputBufferPtr out = xmlOutputBufferCreateIO(string_write, nullptr, &s, nullptr);
  const Scope scope{root, exclude};
  const bool ok = run_c14n(doc, scope, out);
  if (xmlOutputBufferClose(out) < 0 || !ok) {
    throw Error(ErrorCode::DocumentInvalid, "XML canonicalization failed");
  }
  return s;
}

namespace {
struct HashUri {
  HashAlgorithm h;
  const char* uri;
};
constexpr std::array<HashUri, 3> kHashUris{{
    {HashAlgorithm::Sha256, "http://www.w3.org/2001/04/xmlenc#sha256"},
    {HashAlgorithm::Sha384, "http://www.w3.org/2001/04/xmldsig-more#sha384"},
    {HashAlgorithm::Sha512, "http://www.w3.org/2001/04/xmlenc#sha512"},
}};
struct SigUri {
  SignAlgorithm a;
  const char* uri;
};
// RSA-PSS per RFC 6931 2.3.10: MGF1 with the same hash, salt as long as the digest, which is
// exactly what the token produces.
constexpr std::array<SigUri, 9> kSigUris{{
    {SignAlgorithm::RsaPkcs1Sha256, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"},
    {SignAlgorithm::RsaPkcs1Sha384, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"},
    {SignAlgorithm::RsaPkcs1Sha512, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"},
    {SignAlgorithm::RsaPssSha256, "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"},
    {SignAlgorithm::RsaPssSha384, "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"},
    {SignAlgorithm::RsaPssSha512, "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"},
    {SignAlgorithm::EcdsaSha256, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
    {SignAlgorithm::EcdsaSha384, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"},
    {SignAlgorithm::EcdsaSha512, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"},
}};
}  // namespace

std::string_view digest_uri(HashAlgorithm h) noexcept {
  for (const auto& e : kHashUris) {
    if (e.h == h) return e.uri;
  }
  return {};
}
std::optional<HashAlgorithm> hash_from_uri(std::string_view uri) noexcept {
  for (const auto& e : kHashUris) {
    if (uri == e.uri) return e.h;
  }
  return std::nullopt;
}
std::string_view signature_uri(SignAlgorithm a) noexcept {
  for (const auto& e : kSigUris) {
    if (e.a == a) return e.uri;
  }
  return {};
}
std::optional<SignAlgorithm> signature_from_uri(std::string_view uri) noexcept {
  for (const auto& e : kSigUris) {
    if (uri == e.uri) return e.a;
  }
  return std::nullopt;
}

std::string attr(xmlNodePtr node, const char* name) {
  xmlChar* v = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (v == nullptr) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

xmlNodePtr child(xmlNodePtr node, const char* local_name) {
  for (xmlNodePtr c = node != nullptr ? node->children : nullptr; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE &&
        xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(local_name))) {
      return c;
    }
  }
  return nullptr;
}

std::string text(xmlNodePtr node) {
  if (node == nullptr) return {};
  xmlChar* v = xmlNodeGetContent(node);
  if (v == nullptr) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

}  // namespace kyso::formats::detail
