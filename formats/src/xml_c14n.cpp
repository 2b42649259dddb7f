#include "xml_c14n.hpp"

#include <libxml/c14n.h>
#include <libxml/xmlIO.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "der.hpp"

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
  if (!md || EVP_DigestInit_ex(md.get(), detail::evp_md(hash), nullptr) != 1) {
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

// Inclusive C14N 1.0 written directly for the trees signing builds and reads (elements, text
// and plain attributes): libxml2's xmlC14NExecute asks the node-set callback about every node,
// attribute and namespace and keeps namespace stacks, and was most of a transcript's signing
// work in the school file (callgrind). Anything else returns false and libxml2 canonicalizes.
class DirectC14n {
 public:
  explicit DirectC14n(std::string& out) : out_(out) {}

  bool run(xmlNodePtr root, xmlNodePtr exclude) {
    exclude_ = exclude;
    if (root == nullptr || root->type != XML_ELEMENT_NODE || root == exclude) return false;
    // The apex's in-scope namespaces (nearest declaration wins) and no xml:* attribute above
    // it (C14N 1.0 would carry those down to the apex).
    Scope scope;
    for (xmlNodePtr n = root; n != nullptr && n->type == XML_ELEMENT_NODE; n = n->parent) {
      for (xmlNsPtr ns = n->nsDef; ns != nullptr; ns = ns->next) {
        const std::string_view prefix = ns->prefix != nullptr ? chars(ns->prefix) : "";
        if (prefix == "xml") continue;
        bool known = false;
        for (const auto& [p, u] : scope) known = known || p == prefix;
        if (!known) scope.emplace_back(prefix, ns->href != nullptr ? chars(ns->href) : "");
      }
      if (n != root) {
        for (xmlAttrPtr a = n->properties; a != nullptr; a = a->next)
          if (a->ns != nullptr) return false;
      }
    }
    std::erase_if(scope, [](const auto& e) { return e.first.empty() && e.second.empty(); });
    return element(root, scope, {}, true);
  }

 private:
  // prefix -> URI, viewing the tree's own strings (which outlive the canonicalization)
  using Scope = std::vector<std::pair<std::string_view, std::string_view>>;

  static std::string_view chars(const xmlChar* s) { return reinterpret_cast<const char*>(s); }

  // An absolute URI of plain characters (libxml2 refuses relative namespace URIs in C14N, and
  // quotes some characters its own way): anything else is left to libxml2.
  static bool plain_uri(std::string_view uri) {
    if (uri.empty()) return true;
    const auto colon = uri.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        std::isalpha(static_cast<unsigned char>(uri[0])) == 0)
      return false;
    for (std::size_t i = 0; i < uri.size(); ++i) {
      const auto c = static_cast<unsigned char>(uri[i]);
      const bool scheme_char = std::isalnum(c) != 0 || c == '+' || c == '-' || c == '.';
      if (i < colon && !scheme_char) return false;
      if (std::isalnum(c) == 0 &&
          std::string_view("-._~:/?#[]@!$()*+,;=%").find(static_cast<char>(c)) ==
              std::string_view::npos)
        return false;
    }
    return true;
  }

  static const std::string_view* find(const Scope& s, std::string_view prefix) {
    for (const auto& [p, u] : s)
      if (p == prefix) return &u;
    return nullptr;
  }

  void escape(const xmlChar* s, bool attribute) {
    const char* special = attribute ? "&<\"\t\n\r" : "&<>\r";
    for (const char* p = reinterpret_cast<const char*>(s);; ++p) {
      const std::size_t run = std::strcspn(p, special);
      out_.append(p, run);
      p += run;
      if (*p == '\0') return;
      switch (*p) {
        case '&':
          out_ += "&amp;";
          break;
        case '<':
          out_ += "&lt;";
          break;
        case '>':
          if (attribute)
            out_ += '>';
          else
            out_ += "&gt;";
          break;
        case '"':
          if (attribute)
            out_ += "&quot;";
          else
            out_ += '"';
          break;
        case '\t':
          if (attribute)
            out_ += "&#x9;";
          else
            out_ += '\t';
          break;
        case '\n':
          if (attribute)
            out_ += "&#xA;";
          else
            out_ += '\n';
          break;
        case '\r':
          out_ += "&#xD;";
          break;
        default:
          out_ += *p;
          break;
      }
    }
  }

  // `scope`: the namespaces in scope here (for the apex, all; below, the element's own
  // declarations come on top of `parent`, the rendered ones of the output parent).
  bool element(xmlNodePtr e, Scope scope, const Scope& parent, bool apex) {
    if (!apex) {
      for (xmlNsPtr ns = e->nsDef; ns != nullptr; ns = ns->next) {
        const std::string_view prefix = ns->prefix != nullptr ? chars(ns->prefix) : "";
        if (prefix == "xml") continue;
        const std::string_view uri = ns->href != nullptr ? chars(ns->href) : "";
        std::erase_if(scope, [&](const auto& s) { return s.first == prefix; });
        scope.emplace_back(prefix, uri);
      }
    }
    // Which of them this element renders: all at the apex, else those that differ from the
    // output parent's (xmlns="" only to undo a parent's default namespace).
    std::vector<const std::pair<std::string_view, std::string_view>*> render;
    for (const auto& entry : scope) {
      const std::string_view* before = apex ? nullptr : find(parent, entry.first);
      if (before != nullptr && *before == entry.second) continue;
      if (entry.first.empty() && entry.second.empty() && (before == nullptr || before->empty()))
        continue;
      if (!plain_uri(entry.second)) return false;
      render.push_back(&entry);
    }
    std::sort(render.begin(), render.end(), [](auto* a, auto* b) { return a->first < b->first; });
    // The element's own name must be bound as it is in scope.
    const std::string_view prefix =
        e->ns != nullptr && e->ns->prefix != nullptr ? chars(e->ns->prefix) : "";
    const std::string_view* bound = find(scope, prefix);
    const std::string_view uri =
        e->ns != nullptr && e->ns->href != nullptr ? chars(e->ns->href) : "";
    if (bound == nullptr ? !uri.empty() : *bound != uri) return false;
    const auto put_qname = [&] {
      if (!prefix.empty()) {
        out_ += prefix;
        out_ += ':';
      }
      out_ += chars(e->name);
    };

    std::vector<xmlAttrPtr> attrs;
    for (xmlAttrPtr a = e->properties; a != nullptr; a = a->next) {
      if (a->ns != nullptr || (a->children != nullptr && (a->children->type != XML_TEXT_NODE ||
                                                          a->children->next != nullptr)))
        return false;
      attrs.push_back(a);
    }
    std::sort(attrs.begin(), attrs.end(),
              [](xmlAttrPtr a, xmlAttrPtr b) { return xmlStrcmp(a->name, b->name) < 0; });

    out_ += '<';
    put_qname();
    for (const auto* ns : render) {
      if (ns->first.empty()) {
        out_ += " xmlns=\"";
      } else {
        out_ += " xmlns:";
        out_ += ns->first;
        out_ += "=\"";
      }
      out_ += ns->second;
      out_ += '"';
    }
    for (xmlAttrPtr a : attrs) {
      out_ += ' ';
      out_ += chars(a->name);
      out_ += "=\"";
      if (a->children != nullptr && a->children->content != nullptr)
        escape(a->children->content, true);
      out_ += '"';
    }
    out_ += '>';
    Scope rendered = apex ? Scope{} : parent;
    for (const auto* ns : render) {
      std::erase_if(rendered, [&](const auto& s) { return s.first == ns->first; });
      rendered.push_back(*ns);
    }
    for (xmlNodePtr c = e->children; c != nullptr; c = c->next) {
      if (c == exclude_) continue;
      if (c->type == XML_TEXT_NODE) {
        if (c->content != nullptr) escape(c->content, false);
      } else if (c->type == XML_ELEMENT_NODE) {
        if (!element(c, scope, rendered, false)) return false;
      } else {
        return false;  // comments, CDATA, entity references, processing instructions
      }
    }
    out_ += "</";
    put_qname();
    out_ += '>';
    return true;
  }

  std::string& out_;
  xmlNodePtr exclude_ = nullptr;
};

}  // namespace

Bytes c14n_digest_direct(xmlDocPtr doc, xmlNodePtr root, xmlNodePtr exclude, HashAlgorithm hash) {
  std::string text;
  DirectC14n c(text);
  if (!c.run(root, exclude)) return c14n_digest(doc, root, exclude, hash);
  Bytes d(digest_size(hash));
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), d.data(), &n, evp_md(hash), nullptr) != 1)
    throw Error(ErrorCode::Internal, "digest: " + openssl_error());
  return d;
}

std::string c14n_string_direct(xmlNodePtr root, xmlNodePtr exclude) {
  std::string text;
  DirectC14n c(text);
  if (!c.run(root, exclude)) return {};
  return text;
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
