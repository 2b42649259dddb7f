// Document items: parsing (the page's side) and one document signed through formats/ for the
// signing desk (desk.cpp), which gives them the same approval, PIN and audit as hash items.

#include "kyso/agent/items.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "documents.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/core/platform_files.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/documents.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/xml.hpp"

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
  if (v == "b-lt") return Level::LT;
  if (v == "b-lta") return Level::LTA;
  throw Error(ErrorCode::BadRequest,
              std::string("item.") + key + " must be b-b, b-t, b-lt or b-lta");
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
  void authorize(const UserAuth& /*typed*/, std::span<const Bytes> /*digests*/) override {}
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

// B-LT / B-LTA: the signed document goes through the module's extend_file, as `kyso extend`
// does: the validation data (certificates, OCSP, else CRL) of the signer's and the TSA's chains,
// and for B-LTA an archive timestamp with its own. The document's earlier bytes and signatures
// are untouched; a failure fails the item (nothing at a lower level comes back).
void extend_output(DocumentOutput& o, const DocumentItem& d, const DocumentTools& tools,
                   const std::filesystem::path& scratch) {
  if (tools.module == nullptr) throw *tools.module_error;
  formats::ExtendOptions opts;
  opts.to = d.level == Level::LTA ? formats::BaselineLevel::LTA : formats::BaselineLevel::LT;
  opts.trust = *tools.long_term;
  opts.tsa = tools.tsa;
  std::shared_ptr<TempFile> content;
  if (d.type == ItemType::Cms && d.detached) {
    // A detached signature's archive timestamp covers its content's digest.
    if (d.file) {
      opts.content = d.file->file->path().string();
    } else {
      content = new_temp_file(scratch, ".content");
      write_file(content->path(), d.bytes);
      opts.content = content->path().string();
    }
  }
  std::shared_ptr<TempFile> work;
  if (o.file) {
    work = o.file->file;
  } else {
    work = new_temp_file(scratch, ".signed");
    write_file(work->path(), o.bytes);
  }
  (void)tools.module->extend_file(work->path().string(), opts);  // throws when not reached
  platform::restrict_to_owner(work->path());  // renamed into place with the umask's mode
  o.level = std::string(to_string(d.level));
  if (o.file) {
    o.file = hash_file(work);
    o.size = o.file->size;
    o.sha256 = o.file->sha256;
  } else {
    o.bytes = read_file(work->path());
  }
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

std::string_view to_string(Level l) noexcept {
  switch (l) {
    case Level::B:
      return "B-B";
    case Level::T:
      return "B-T";
    case Level::LT:
      return "B-LT";
    case Level::LTA:
      return "B-LTA";
  }
  return "B-B";
}

std::shared_ptr<const DocumentItem> parse_document(ItemType type, const json& j,
                                                   Transfers* transfers) {
  auto d = std::make_shared<DocumentItem>();
  d->type = type;
  switch (type) {
    case ItemType::Xml: {
      parse_content(*d, j, transfers, true);
      const auto profile = optional_string(j, "profile", 32);
      static const std::pair<std::string_view, Level> kXades[] = {{"xades-b-b", Level::B},
                                                                  {"xades-b-t", Level::T},
                                                                  {"xades-b-lt", Level::LT},
                                                                  {"xades-b-lta", Level::LTA}};
      const auto* x =
          std::ranges::find(kXades, profile, &std::pair<std::string_view, Level>::first);
      if (x != std::end(kXades)) {
        d->xades = true;
        d->level = x->second;
      } else if (profile.empty() || profile == "xmldsig") {
        d->xades = false;
      } else {
        throw Error(ErrorCode::BadRequest,
                    "item.profile must be xmldsig, xades-b-b, xades-b-t, xades-b-lt or "
                    "xades-b-lta");
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
        if (d->level >= Level::LT) {
          // Extending checks the signature and archive-timestamps the content: it needs it.
          throw Error(ErrorCode::BadRequest,
                      "a cms item over a hash is b-b or b-t; send the content for b-lt/b-lta, "
                      "or extend the signature later with `kyso extend --content`");
        }
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
  const std::string lvl(to_string(d.level));
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

// ---- documents on the signing desk
// ---------------------------------------------------------------

bool needs_documents_module(const Item& item) noexcept {
  return item.type == ItemType::Xml || item.type == ItemType::Pdf ||
         (item.document && item.document->level >= Level::LT);
}

namespace {
bool any_at_least(const std::vector<Item>& items, Level l) {
  return std::ranges::any_of(items,
                             [l](const Item& i) { return i.document && i.document->level >= l; });
}
}  // namespace

std::optional<formats::TsaConfig> tsa_for(const std::vector<Item>& items,
                                          const firmware_config::AgentConfig& cfg) {
  if (!any_at_least(items, Level::T)) return std::nullopt;
  if (cfg.tsa_url.empty()) {
    throw Error(ErrorCode::TsaNotConfigured,
                std::string("a ") + (any_at_least(items, Level::LT) ? "B-LT/B-LTA" : "B-T") +
                    " item needs tsa_url in the agent's config");
  }
  return formats::TsaConfig{.url = cfg.tsa_url,
                            .hash = HashAlgorithm::Sha256,
                            .timeout = std::chrono::seconds(20),
                            .trusted_pem = cfg.trust_anchors};
}

std::optional<formats::TrustConfig> long_term_for(const std::vector<Item>& items,
                                                  const firmware_config::AgentConfig& cfg) {
  if (!any_at_least(items, Level::LT)) return std::nullopt;
  if (cfg.trust_anchors.empty()) {
    throw Error(ErrorCode::NotSupported,
                "a B-LT/B-LTA item needs [trust] anchors in the agent's config (the chains whose "
                "validation data it archives end there)");
  }
  formats::TrustConfig trust;
  trust.anchors = cfg.trust_anchors;
  trust.ocsp_url = cfg.ocsp_url;
  trust.timeout = std::chrono::seconds(20);
  return trust;
}

void load_documents_module(DocumentTools& tools, const std::vector<Item>& items,
                           const firmware_config::AgentConfig& cfg, bool every_document) {
  if (std::ranges::none_of(items, [&](const Item& i) {
        return every_document ? i.document != nullptr : needs_documents_module(i);
      })) {
    return;
  }
  try {
    tools.module = &formats::load_documents_module(cfg.formats_module);
  } catch (const Error& e) {
    spdlog::error("xml and pdf items cannot be signed: {}", e.detail());
    tools.module_error = e;
  }
}

namespace {

formats::XmlSignOptions xml_options(const DocumentItem& d, SignAlgorithm alg,
                                    const DocumentTools& tools) {
  formats::XmlSignOptions opts;
  opts.algorithm = alg;
  opts.reference_id = d.reference;
  opts.parent_id = d.parent;
  opts.container = d.container;
  opts.signature_id = d.signature_id;
  opts.level = !d.xades              ? formats::XmlLevel::Dsig
               : d.level >= Level::T ? formats::XmlLevel::XadesT
                                     : formats::XmlLevel::XadesB;
  opts.tsa = d.level >= Level::T ? tools.tsa : std::nullopt;
  return opts;
}

formats::PdfSignOptions pdf_options(const DocumentItem& d, SignAlgorithm alg, Role role,
                                    const DocumentTools& tools) {
  formats::PdfSignOptions opts;
  opts.algorithm = alg;
  opts.field_name = d.field_name;
  opts.reason = d.reason.empty() ? std::string(role_label(role, Language::Vi)) : d.reason;
  opts.location = d.location;
  opts.tsa = d.level >= Level::T ? tools.tsa : std::nullopt;
  if (d.visible) {
    opts.visible = d.visible;
    opts.visible->role = std::string(role_label(role, Language::Vi));
  }
  return opts;
}

formats::CmsOptions cms_options(const DocumentItem& d, SignAlgorithm alg,
                                const DocumentTools& tools) {
  formats::CmsOptions opts;
  opts.algorithm = alg;
  opts.detached = d.detached;
  opts.tsa = d.level >= Level::T ? tools.tsa : std::nullopt;
  return opts;
}

/// One document through formats/ with `rec` as the signer.
DocumentOutput run_document(Signer& rec, const DocumentItem& d, SignAlgorithm alg, Role role,
                            const DocumentTools& tools, const std::filesystem::path& scratch) {
  const auto* documents = tools.module;
  DocumentOutput o;
  switch (d.type) {
    case ItemType::Xml: {
      const auto opts = xml_options(d, alg, tools);
      if (documents == nullptr) throw *tools.module_error;
      auto signed_xml = d.file ? documents->sign_xml_file(rec, d.file->file->path().string(), opts)
                               : documents->sign_xml(rec, d.bytes, opts);
      o.signature_id = std::move(signed_xml.signature_id);
      o.bytes = std::move(signed_xml.document);
      break;
    }
    case ItemType::Pdf: {
      const auto opts = pdf_options(d, alg, role, tools);
      if (documents == nullptr) throw *tools.module_error;
      if (!d.file) {
        // Small PDFs arrive inline: signed in memory, no file on disk.
        formats::PdfSignResult r;
        o.bytes = documents->sign_pdf(rec, d.bytes, opts, &r);
        o.field_name = r.field_name;
        break;
      }
      // Uploaded PDFs are streamed from the connection's directory to a new file there.
      auto output = new_temp_file(scratch, ".signed.pdf");
      const auto r = documents->sign_pdf_file(rec, d.file->file->path().string(),
                                              output->path().string(), opts);
      platform::restrict_to_owner(output->path());  // renamed into place with the umask's mode
      o.field_name = r.field_name;
      o.file = hash_file(output);
      o.size = o.file->size;
      o.sha256 = o.file->sha256;
      break;
    }
    case ItemType::Cms: {
      const auto opts = cms_options(d, alg, tools);
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
  return o;
}

/// The size and SHA-256 of an output held in memory; B-LT/B-LTA extension first.
void finish_output(DocumentOutput& o, const DocumentItem& d, const DocumentTools& tools,
                   const std::filesystem::path& scratch) {
  if (d.level >= Level::LT) extend_output(o, d, tools, scratch);
  if (!o.file) {
    o.size = o.bytes.size();
    o.sha256 = to_hex(sha256(o.bytes));
  }
}

/// Goes as far as the signature and no further: the first digest to sign ends the run.
class ProbeSigner final : public Signer {
 public:
  struct Reached {};
  explicit ProbeSigner(const Credential& cred) : cred_(cred) {}
  [[nodiscard]] const Credential& credential() const override { return cred_; }
  [[nodiscard]] AuthKind auth_required() const override { return AuthKind::None; }
  void authorize(const UserAuth& /*typed*/, std::span<const Bytes> /*digests*/) override {}
  Bytes sign_digest(SignAlgorithm /*alg*/, std::span<const std::uint8_t> /*digest*/,
                    SignatureEncoding /*enc*/) override {
    reached_ = true;
    throw Reached{};
  }
  [[nodiscard]] bool reached() const noexcept { return reached_; }

 private:
  const Credential& cred_;
  bool reached_ = false;
};

}  // namespace

DocumentOutput sign_document(const std::shared_ptr<Signer>& signer, const DocumentItem& d,
                             SignAlgorithm alg, Role role, const DocumentTools& tools,
                             const std::filesystem::path& scratch) {
  RecordingSigner rec(signer);
  DocumentOutput o = run_document(rec, d, alg, role, tools, scratch);
  o.signed_digest = rec.signed_digest();
  finish_output(o, d, tools, scratch);
  return o;
}

PreparedDocument prepare_document(const DocumentItem& d, const Credential& cred, SignAlgorithm alg,
                                  Role role, const DocumentTools& tools,
                                  std::chrono::system_clock::time_point time,
                                  const formats::StateKey& key) {
  if (tools.module == nullptr) throw *tools.module_error;
  const auto* documents = tools.module;
  const Bytes from_file = d.file ? read_file(d.file->file->path()) : Bytes{};
  const std::span<const std::uint8_t> content =
      d.file ? std::span<const std::uint8_t>(from_file) : std::span<const std::uint8_t>(d.bytes);
  formats::Prepared p;
  switch (d.type) {
    case ItemType::Xml: {
      auto opts = xml_options(d, alg, tools);
      opts.time = time;
      p = documents->prepare_xml(content, cred, opts, key);
      break;
    }
    case ItemType::Pdf: {
      auto opts = pdf_options(d, alg, role, tools);
      opts.time = time;
      p = documents->prepare_pdf(content, cred, opts, key);
      break;
    }
    case ItemType::Cms: {
      auto opts = cms_options(d, alg, tools);
      opts.time = time;
      p = d.digest_only ? documents->prepare_cms_digest(d.sha256, cred, opts, key)
                        : documents->prepare_cms(content, cred, opts, key);
      break;
    }
    case ItemType::Hash:
      throw Error(ErrorCode::Internal, "hash item among documents");
  }
  return {.digest = std::move(p.digest), .state = std::move(p.state)};
}

DocumentOutput embed_document(const PreparedDocument& p, std::span<const std::uint8_t> signature,
                              const DocumentItem& d, const DocumentTools& tools,
                              const formats::StateKey& key, const std::filesystem::path& scratch) {
  if (tools.module == nullptr) throw *tools.module_error;
  formats::EmbedOptions opts;
  opts.tsa = d.level >= Level::T ? tools.tsa : std::nullopt;
  // Checked there: the signature verifies over the prepared digest with the prepared certificate.
  formats::Embedded e = tools.module->embed(p.state, signature, key, opts);
  DocumentOutput o;
  o.signed_digest = p.digest;
  if (d.type == ItemType::Xml) o.signature_id = std::move(e.id);
  if (d.type == ItemType::Pdf) o.field_name = std::move(e.id);
  if (d.type == ItemType::Pdf && d.file) {
    // An uploaded PDF's output goes to a new file beside it, as when a token signs it.
    auto output = new_temp_file(scratch, ".signed.pdf");
    write_file(output->path(), e.document);
    platform::restrict_to_owner(output->path());
    o.file = hash_file(output);
    o.size = o.file->size;
    o.sha256 = o.file->sha256;
  } else {
    o.bytes = std::move(e.document);
  }
  finish_output(o, d, tools, scratch);
  return o;
}

std::optional<Error> check_document(const DocumentItem& d, const Credential& cred,
                                    SignAlgorithm alg, Role role, const DocumentTools& tools,
                                    const std::filesystem::path& scratch) {
  if ((d.type != ItemType::Xml && d.type != ItemType::Pdf) || tools.module == nullptr) {
    return std::nullopt;
  }
  ProbeSigner probe(cred);
  try {
    (void)run_document(probe, d, alg, role, tools, scratch);
  } catch (const ProbeSigner::Reached&) {
    return std::nullopt;
  } catch (const Error& e) {
    // Only what the document itself is wrong about; anything else shows when it is signed.
    if (!probe.reached() &&
        (e.code() == ErrorCode::DocumentInvalid || e.code() == ErrorCode::DocumentEncrypted ||
         e.code() == ErrorCode::BadRequest)) {
      return e;
    }
  } catch (const std::exception&) {
    // Likewise: signing reports it.
  }
  return std::nullopt;
}

std::string audit_detail(const Item& item, const std::optional<DocumentOutput>& out,
                         const SignResult& result) {
  std::string detail(to_string(item.type));
  if (out) {
    detail += " signed-digest=" + to_hex(out->signed_digest) + " output-sha256=" + out->sha256;
    if (!out->signature_id.empty()) detail += " signature=" + out->signature_id;
    if (!out->field_name.empty()) detail += " field=" + out->field_name;
    if (!out->level.empty()) detail += " level=" + out->level;
  } else if (const auto& e = result.error; e && e->code() == ErrorCode::FormatsUnavailable) {
    detail += " " + e->detail();
  }
  return detail;
}

}  // namespace kyso::agent
