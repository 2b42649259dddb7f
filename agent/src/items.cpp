// Document items: parsing (the page's side) and signing through formats/ (the token's side),
// with the same approval, PIN and audit rules as hash items.

#include "kyso/agent/items.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "kyso/agent/service.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/documents.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/xml.hpp"
#include "ordered.hpp"

namespace kyso::agent {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxIdBytes = 200;
constexpr std::size_t kMaxTextBytes = 500;

std::string optional_string(const json& j, const char* key, std::size_t max) {
  const auto it = j.find(key);
  if (it == j.end()) return {};
  if (!it->is_string())
    throw Error(ErrorCode::BadRequest, std::string("item.") + key + " must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max) {
    throw Error(ErrorCode::BadRequest,
                std::string("item.") + key + " is longer than " + std::to_string(max) + " bytes");
  }
  if (std::ranges::any_of(s, [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    throw Error(ErrorCode::BadRequest, std::string("item.") + key + " has control characters");
  }
  return s;
}

Level parse_level(const json& j, const char* key) {
  const auto v = optional_string(j, key, 32);
  if (v.empty() || v == "b-b") return Level::B;
  if (v == "b-t") return Level::T;
  throw Error(ErrorCode::BadRequest, std::string("item.") + key + " must be b-b or b-t");
}

/// The content: `document` (base64), `text` (UTF-8, xml and cms) or `uploadId`; exactly one.
void parse_content(DocumentItem& d, const json& j, Transfers* transfers, bool allow_text) {
  const int given = static_cast<int>(j.contains("document")) +
                    static_cast<int>(j.contains("text")) + static_cast<int>(j.contains("uploadId"));
  if (given != 1) {
    throw Error(ErrorCode::BadRequest, std::string("item needs exactly one of document (base64)") +
                                           (allow_text ? ", text (UTF-8)" : "") + " or uploadId");
  }
  if (const auto u = j.find("uploadId"); u != j.end()) {
    if (!u->is_string()) throw Error(ErrorCode::BadRequest, "item.uploadId must be a string");
    if (transfers == nullptr) throw Error(ErrorCode::BadRequest, "uploads are not available here");
    d.file = transfers->upload(u->get<std::string>());
    d.size = d.file->size;
    d.sha256 = from_hex(d.file->sha256);
    return;
  }
  if (const auto t = j.find("text"); t != j.end()) {
    if (!allow_text) throw Error(ErrorCode::BadRequest, "a PDF is sent as document (base64)");
    if (!t->is_string()) throw Error(ErrorCode::BadRequest, "item.text must be a string");
    const auto& s = t->get_ref<const std::string&>();
    d.bytes.assign(s.begin(), s.end());
  } else {
    const auto& doc = j.at("document");
    if (!doc.is_string()) throw Error(ErrorCode::BadRequest, "item.document must be base64");
    try {
      d.bytes = from_base64(doc.get_ref<const std::string&>());
    } catch (const Error&) {
      throw Error(ErrorCode::BadRequest, "item.document is not base64");
    }
  }
  if (d.bytes.empty()) throw Error(ErrorCode::DocumentInvalid, "the document is empty");
  d.size = d.bytes.size();
  d.sha256 = sha256(d.bytes);
}

/// `visible`: true (a box at the bottom left of the last page) or {page, x, y, width, height}.
std::optional<formats::PdfVisibleSignature> parse_visible(const json& j) {
  const auto v = j.find("visible");
  if (v == j.end() || (v->is_boolean() && !v->get<bool>())) return std::nullopt;
  formats::PdfVisibleSignature box;
  box.page = 0;
  if (v->is_boolean()) return box;
  if (!v->is_object()) throw Error(ErrorCode::BadRequest, "item.visible is true or an object");
  if (const auto p = v->find("page"); p != v->end()) {
    if (!p->is_number_unsigned() || p->get<std::uint64_t>() > 100000) {
      throw Error(ErrorCode::BadRequest, "item.visible.page is a page number (0: the last)");
    }
    box.page = static_cast<int>(p->get<std::uint64_t>());
  }
  const auto number = [&](const char* key, double& out, double min) {
    const auto it = v->find(key);
    if (it == v->end()) return;
    if (!it->is_number() || it->get<double>() < min || it->get<double>() > 14400) {
      throw Error(ErrorCode::BadRequest, std::string("item.visible.") + key + " out of range");
    }
    out = it->get<double>();
  };
  number("x", box.x, 0);
  number("y", box.y, 0);
  number("width", box.width, 20);
  number("height", box.height, 10);
  return box;
}

std::string human_size(std::uint64_t n) {
  char buf[32];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else if (n < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(n) / 1024);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / (1024.0 * 1024));
  }
  return buf;
}

/// Passes everything to the token's signer and keeps what was signed, for the audit log.
class RecordingSigner final : public Signer {
 public:
  explicit RecordingSigner(std::shared_ptr<Signer> inner) : inner_(std::move(inner)) {}
  [[nodiscard]] const Credential& credential() const override { return inner_->credential(); }
  [[nodiscard]] AuthKind auth_required() const override { return AuthKind::None; }
  void authorize(const Secret* /*secret*/, std::span<const Bytes> /*digests*/) override {}
  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc) override {
    signed_.assign(digest.begin(), digest.end());
    return inner_->sign_digest(alg, digest, enc);
  }
  [[nodiscard]] const Bytes& signed_digest() const noexcept { return signed_; }

 private:
  std::shared_ptr<Signer> inner_;
  Bytes signed_;
};

/// xml and pdf items are signed by kyso-formats-documents.so; cms items in the agent itself.
bool needs_documents_module(ItemType t) noexcept {
  return t == ItemType::Xml || t == ItemType::Pdf;
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::Internal, "cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& p, std::span<const std::uint8_t> data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) throw Error(ErrorCode::Internal, "cannot write " + p.string() + " (disk full?)");
}

}  // namespace

std::string_view to_string(ItemType t) noexcept {
  switch (t) {
    case ItemType::Hash:
      return "hash";
    case ItemType::Xml:
      return "xml";
    case ItemType::Pdf:
      return "pdf";
    case ItemType::Cms:
      return "cms";
  }
  return "hash";
}

std::shared_ptr<const DocumentItem> parse_document(ItemType type, const json& j,
                                                   Transfers* transfers) {
  auto d = std::make_shared<DocumentItem>();
  d->type = type;
  switch (type) {
    case ItemType::Xml: {
      parse_content(*d, j, transfers, true);
      const auto profile = optional_string(j, "profile", 32);
      if (profile.empty() || profile == "xmldsig") {
        d->xades = false;
      } else if (profile == "xades-b-b" || profile == "xades-b-t") {
        d->xades = true;
        d->level = profile == "xades-b-t" ? Level::T : Level::B;
      } else {
        throw Error(ErrorCode::BadRequest, "item.profile must be xmldsig, xades-b-b or xades-b-t");
      }
      d->reference = optional_string(j, "reference", kMaxIdBytes);
      if (d->reference.empty()) {
        throw Error(ErrorCode::BadRequest,
                    "item.reference (the Id of the element to sign) missing");
      }
      d->parent = optional_string(j, "parent", kMaxIdBytes);
      d->container = optional_string(j, "container", kMaxIdBytes);
      d->signature_id = optional_string(j, "signatureId", kMaxIdBytes);
      break;
    }
    case ItemType::Pdf:
      parse_content(*d, j, transfers, false);
      d->level = parse_level(j, "level");
      d->field_name = optional_string(j, "fieldName", kMaxIdBytes);
      d->reason = optional_string(j, "reason", kMaxTextBytes);
      d->location = optional_string(j, "location", kMaxTextBytes);
      d->visible = parse_visible(j);
      break;
    case ItemType::Cms: {
      d->level = parse_level(j, "level");
      if (const auto det = j.find("detached"); det != j.end()) {
        if (!det->is_boolean())
          throw Error(ErrorCode::BadRequest, "item.detached must be a boolean");
        d->detached = det->get<bool>();
      }
      if (j.contains("hash")) {
        // A digest computed by the page's server: detached CAdES over it.
        if (!d->detached) throw Error(ErrorCode::BadRequest, "an attached CMS needs the content");
        const auto& h = j.at("hash");
        const auto alg_name = optional_string(j, "hashAlgorithm", 16);
        const auto alg = parse_hash_algorithm(alg_name.empty() ? "sha256" : alg_name);
        if (!h.is_string() || !alg) {
          throw Error(ErrorCode::BadRequest, "item.hash (hex) and hashAlgorithm are required");
        }
        try {
          d->sha256 = from_hex(h.get_ref<const std::string&>());
        } catch (const Error&) {
          throw Error(ErrorCode::DigestInvalid, "item.hash is not hex");
        }
        if (d->sha256.size() != digest_size(*alg)) {
          throw Error(ErrorCode::DigestInvalid,
                      "item.hash has the wrong length for " + std::string(to_string(*alg)));
        }
        d->digest_only = true;
        d->digest_algorithm = *alg;
      } else {
        parse_content(*d, j, transfers, true);
      }
      break;
    }
    case ItemType::Hash:
      throw Error(ErrorCode::Internal, "parse_document for a hash item");
  }
  return d;
}

std::string dialog_label(const DocumentItem& d) {
  std::string kind;
  const std::string lvl = d.level == Level::T ? "B-T" : "B-B";
  switch (d.type) {
    case ItemType::Xml:
      kind = d.xades ? "XML · XAdES " + lvl : "XML · XML-DSig";
      break;
    case ItemType::Pdf:
      kind = "PDF · PAdES " + lvl;
      break;
    case ItemType::Cms:
      kind = std::string(d.digest_only ? "CMS (hash)" : "CMS") + " · CAdES " + lvl;
      break;
    case ItemType::Hash:
      break;
  }
  if (!d.digest_only) kind += " · " + human_size(d.size);
  return "[" + kind + "] ";
}

json output_json(const DocumentOutput& out, Transfers& transfers, std::size_t& inline_budget) {
  json j = {{"size", out.size}, {"sha256", out.sha256}};
  if (!out.signature_id.empty()) j["signatureId"] = out.signature_id;
  if (!out.field_name.empty()) j["fieldName"] = out.field_name;
  const bool fits = out.size <= transfers.limits().inline_result_bytes && out.size <= inline_budget;
  if (fits) {
    inline_budget -= out.size;
    j["document"] = to_base64(out.file ? read_file(out.file->file->path()) : out.bytes);
    return j;
  }
  if (out.file) {
    j["downloadId"] = transfers.add_download(*out.file);
  } else {
    auto f = new_temp_file(transfers.dir(), ".out");
    write_file(f->path(), out.bytes);
    j["downloadId"] =
        transfers.add_download(StoredFile{.file = f, .size = out.size, .sha256 = out.sha256});
  }
  return j;
}

// ---- Service: signing documents -----------------------------------------------------------------

void Service::check_certificate(const Credential& cred) {
  const auto now = std::chrono::system_clock::now();
  if (now < cred.cert.not_before) {
    throw Error(ErrorCode::CertNotYetValid,
                "certificate valid from " + to_iso8601(cred.cert.not_before));
  }
  if (now > cred.cert.not_after) {
    throw Error(ErrorCode::CertExpired, "certificate expired " + to_iso8601(cred.cert.not_after));
  }
  if (!cred.cert.can_sign()) throw Error(ErrorCode::CertKeyUsage, "key usage forbids signing");
  if (config_.trust_anchors.empty()) return;  // no trust configured: validity and key usage only
  formats::TrustConfig trust;
  trust.anchors = config_.trust_anchors;
  trust.check_revocation = config_.revocation_check;
  trust.policy =
      config_.refuse_on_check_failure ? formats::CheckPolicy::Refuse : formats::CheckPolicy::Warn;
  formats::CertificateChecker checker(std::move(trust));
  const auto r = checker.check(cred);  // refuse: throws the first problem
  for (const auto& p : r.problems) {
    spdlog::warn("signing with {} despite {} ({}): the policy is warn", cred.id(), p.name(),
                 p.detail());
  }
}

SignOutcome Service::sign_documents(const SignJob& job, const std::atomic<bool>& cancel,
                                    const Progress& progress) {
  const std::string role_name(to_string(job.role));
  auto refuse = [&](const Error& e, const std::string& cred_id) {
    audit_job_refusal(job, e, cred_id);
  };

  Located located;
  SignOutcome out;
  std::optional<formats::TsaConfig> tsa;
  try {
    if (std::ranges::any_of(job.items, [](const Item& i) { return !i.document; })) {
      throw Error(ErrorCode::BadRequest,
                  "hash and document items cannot share a request; send them separately");
    }
    if (std::ranges::any_of(job.items,
                            [](const Item& i) { return i.document->level == Level::T; })) {
      if (config_.tsa_url.empty()) {
        throw Error(ErrorCode::TsaNotConfigured, "a B-T item needs tsa_url in the agent's config");
      }
      tsa = formats::TsaConfig{.url = config_.tsa_url,
                               .hash = HashAlgorithm::Sha256,
                               .timeout = std::chrono::seconds(20),
                               .trusted_pem = config_.trust_anchors};
    }
    located = choose(job, &cancel);
    if (!located.token) {
      // A remote (CSC, SCAL2) authorization binds exactly the digests shown before signing;
      // formats/ computes a document's digest (signed attributes, signing time) only while it
      // signs. Until formats splits preparing from signing, documents sign on tokens only.
      throw Error(ErrorCode::NotSupported,
                  "document items sign on a token credential; a remote credential signs hash "
                  "items");
    }
    const Credential& cred = located.credential;
    out.credential = cred;
    check_certificate(cred);
    // A CMS over a given digest fixes the hash; documents use the algorithm asked or SHA-256.
    std::optional<HashAlgorithm> fixed;
    for (const auto& i : job.items) {
      if (!i.document->digest_only) continue;
      if (fixed && *fixed != i.document->digest_algorithm) {
        throw Error(ErrorCode::BadRequest, "all hash items of a batch must use one hashAlgorithm");
      }
      fixed = i.document->digest_algorithm;
    }
    out.algorithm = choose_algorithm(job, cred, fixed);
  } catch (const Error& e) {
    refuse(e, located.credential.id());
    throw;
  }

  const Credential& cred = out.credential;
  std::vector<Bytes> approved;
  approved.reserve(job.items.size());
  for (const auto& i : job.items) approved.push_back(i.digest);

  // xml and pdf items need the document formats module: loaded here, on the first such item,
  // and kept. Without it those items fail with FORMATS_UNAVAILABLE; cms items still sign.
  const formats::DocumentFunctions* documents = nullptr;
  std::optional<Error> documents_error;
  const auto needs_module = [](const Item& i) { return needs_documents_module(i.type); };
  if (std::ranges::any_of(job.items, needs_module)) {
    try {
      documents = &formats::load_documents_module(config_.formats_module);
    } catch (const Error& e) {
      spdlog::error("xml and pdf items cannot be signed: {}", e.detail());
      documents_error = e;
    }
  }
  if (documents_error && std::ranges::all_of(job.items, needs_module)) {
    // Nothing here can be signed: no dialog, no PIN; each item fails and is audited as such.
    const std::size_t n = job.items.size();
    out.results.resize(n);
    out.documents.resize(n);
    std::vector<AuditRow> rows;
    for (std::size_t i = 0; i < n; ++i) {
      out.results[i].error = documents_error;
      rows.push_back(AuditRow{
          .event = "signature",
          .origin = job.origin,
          .role = role_name,
          .credential_id = cred.id(),
          .digest = to_hex(approved[i]),
          .result = std::string(documents_error->name()),
          .detail = std::string(to_string(job.items[i].type)) + " " + documents_error->detail()});
    }
    audit_->append(rows);
    if (progress) {
      for (std::size_t i = 0; i < n; ++i) progress(i, out.results[i]);
    }
    return out;
  }

  auto signer = located.token->signer(cred);

  struct LogoutGuard {
    std::shared_ptr<pkcs11::Token> token;
    ~LogoutGuard() { token->logout(); }
  } guard{located.token};

  approve_and_log_in(job, cred, *signer, approved, cancel);

  // The approval covers exactly these documents (their SHA-256 values, in order).
  std::string all;
  std::map<std::string, std::size_t> kinds;
  for (std::size_t i = 0; i < job.items.size(); ++i) {
    all.append(approved[i].begin(), approved[i].end());
    ++kinds[std::string(to_string(job.items[i].type))];
  }
  std::string what;
  for (const auto& [k, n] : kinds) what += (what.empty() ? "" : ", ") + std::to_string(n) + " " + k;
  const auto* p = reinterpret_cast<const std::uint8_t*>(all.data());
  audit_->append(AuditRow{.event = "approval",
                          .origin = job.origin,
                          .role = role_name,
                          .credential_id = cred.id(),
                          .digest = to_hex(sha256({p, all.size()})),
                          .result = "ok",
                          .detail = std::to_string(job.items.size()) + " document(s) (" + what +
                                    "), " + std::string(to_string(out.algorithm)) +
                                    (signer->authorization_note().empty()
                                         ? std::string()
                                         : ", " + std::string(signer->authorization_note()))});

  const auto sign_one = [&](const DocumentItem& d) {
    RecordingSigner rec(signer);
    DocumentOutput o;
    switch (d.type) {
      case ItemType::Xml: {
        formats::XmlSignOptions opts;
        opts.algorithm = out.algorithm;
        opts.reference_id = d.reference;
        opts.parent_id = d.parent;
        opts.container = d.container;
        opts.signature_id = d.signature_id;
        opts.level = !d.xades              ? formats::XmlLevel::Dsig
                     : d.level == Level::T ? formats::XmlLevel::XadesT
                                           : formats::XmlLevel::XadesB;
        opts.tsa = d.level == Level::T ? tsa : std::nullopt;
        if (documents == nullptr) throw *documents_error;
        auto signed_xml = d.file
                              ? documents->sign_xml_file(rec, d.file->file->path().string(), opts)
                              : documents->sign_xml(rec, d.bytes, opts);
        o.signature_id = std::move(signed_xml.signature_id);
        o.bytes = std::move(signed_xml.document);
        break;
      }
      case ItemType::Pdf: {
        formats::PdfSignOptions opts;
        opts.algorithm = out.algorithm;
        opts.field_name = d.field_name;
        opts.reason = d.reason.empty() ? std::string(role_label(job.role, Language::Vi)) : d.reason;
        opts.location = d.location;
        opts.tsa = d.level == Level::T ? tsa : std::nullopt;
        if (d.visible) {
          opts.visible = d.visible;
          opts.visible->role = std::string(role_label(job.role, Language::Vi));
        }
        if (documents == nullptr) throw *documents_error;
        if (!d.file) {
          // Small PDFs arrive inline: signed in memory, no file on disk.
          formats::PdfSignResult r;
          o.bytes = documents->sign_pdf(rec, d.bytes, opts, &r);
          o.field_name = r.field_name;
          break;
        }
        // Uploaded PDFs are streamed from the connection's directory to a new file there.
        auto output = new_temp_file(job.scratch, ".signed.pdf");
        const auto r = documents->sign_pdf_file(rec, d.file->file->path().string(),
                                                output->path().string(), opts);
        ::chmod(output->path().c_str(), 0600);  // renamed into place with the umask's mode
        o.field_name = r.field_name;
        o.file = hash_file(output);
        o.size = o.file->size;
        o.sha256 = o.file->sha256;
        break;
      }
      case ItemType::Cms: {
        formats::CmsOptions opts;
        opts.algorithm = out.algorithm;
        opts.detached = d.detached;
        opts.tsa = d.level == Level::T ? tsa : std::nullopt;
        if (d.digest_only) {
          o.bytes = formats::sign_cms_digest(rec, d.sha256, opts);
        } else {
          const Bytes content = d.file ? read_file(d.file->file->path()) : Bytes{};
          o.bytes = formats::sign_cms(rec,
                                      d.file ? std::span<const std::uint8_t>(content)
                                             : std::span<const std::uint8_t>(d.bytes),
                                      opts);
        }
        break;
      }
      case ItemType::Hash:
        throw Error(ErrorCode::Internal, "hash item among documents");
    }
    if (!o.file) {
      o.size = o.bytes.size();
      o.sha256 = to_hex(sha256(o.bytes));
    }
    o.signed_digest = rec.signed_digest();
    return o;
  };

  // As for hashes: lanes on their own token sessions keep the token busy while another
  // canonicalizes or copies its document; each item is audited before it is reported.
  out.documents.resize(job.items.size());
  detail::SignLoop loop{
      .items = job.items.size(),
      .cancel = &cancel,
      .sign = [&](std::size_t i,
                  SignResult&) { out.documents[i] = sign_one(*job.items[i].document); },
      .digest = [&](std::size_t i) { return std::span<const std::uint8_t>(approved[i]); },
      .detail =
          [&](std::size_t i) {
            std::string detail(to_string(job.items[i].type));
            if (const auto& d = out.documents[i]) {
              detail +=
                  " signed-digest=" + to_hex(d->signed_digest) + " output-sha256=" + d->sha256;
              if (!d->signature_id.empty()) detail += " signature=" + d->signature_id;
              if (!d->field_name.empty()) detail += " field=" + d->field_name;
            } else if (const auto& e = out.results[i].error;
                       e && e->code() == ErrorCode::FormatsUnavailable) {
              detail += " " + e->detail();
            }
            return detail;
          },
      .withhold = [&](std::size_t i) { out.documents[i].reset(); }};
  out.cancelled =
      detail::sign_in_order(loop, *audit_, job.origin, role_name, cred.id(), out.results, progress);
  return out;
}

}  // namespace kyso::agent
