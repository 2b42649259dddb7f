// kyso extend: B-T (or B-B) documents to B-LT and B-LTA, and re-timestamping of archives.

#include "kyso/formats/extend.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <openssl/pem.h>

#include <libxml/tree.h>

#include "cms_longterm.hpp"
#include "der.hpp"
#include "kyso/formats/longterm.hpp"
#include "pdf_longterm.hpp"
#include "pdf_scan.hpp"
#include "tsa_digest.hpp"
#include "verify_common.hpp"
#include "xml_c14n.hpp"
#include "xml_longterm.hpp"

namespace kyso::formats {
namespace {

using Clock = std::chrono::system_clock;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const Bytes& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) throw Error(ErrorCode::DocumentInvalid, "cannot write " + path);
}

BaselineLevel lowest(const VerifyReport& r) {
  BaselineLevel l = BaselineLevel::LTA;
  for (const auto& s : r.signatures) l = std::min(l, s.long_term.level);
  return l;
}

std::optional<Clock::time_point> covered_until(const VerifyReport& r) {
  std::optional<Clock::time_point> out;
  for (const auto& s : r.signatures) {
    if (s.long_term.covered_until && (!out || *s.long_term.covered_until < *out))
      out = s.long_term.covered_until;
  }
  return out;
}

// A signature that does not verify is never extended: the archive would preserve a forgery.
void require_intact(const VerifyReport& r) {
  if (r.signatures.empty()) throw Error(ErrorCode::DocumentInvalid, r.file + " has no signature");
  for (const auto& s : r.signatures) {
    if (!s.integrity) {
      throw Error(ErrorCode::DocumentInvalid, r.file + ": signature " + s.id +
                                                  " does not verify (" + s.integrity_detail +
                                                  "); not extended");
    }
  }
}

std::string describe(const char* what, const ValidationData& d) {
  return std::string(what) + ": " + std::to_string(d.certs.size()) + " certificate(s), " +
         std::to_string(d.ocsps.size()) + " OCSP response(s), " + std::to_string(d.crls.size()) +
         " CRL(s)";
}

// What `want` holds beyond `have`.
ValidationData missing(const ValidationData& have, const ValidationData& want) {
  ValidationData out;
  auto add = [](const std::vector<Bytes>& h, const std::vector<Bytes>& w, std::vector<Bytes>& o) {
    for (const auto& x : w)
      if (std::ranges::find(h, x) == h.end()) o.push_back(x);
  };
  add(have.certs, want.certs, out.certs);
  add(have.ocsps, want.ocsps, out.ocsps);
  add(have.crls, want.crls, out.crls);
  return out;
}

// Starts a result from the file's state; true when it is already where asked (and not due for
// renewal): nothing is to be done.
bool already_there(ExtendResult& res, const VerifyReport& rep, const ExtendOptions& o,
                   bool& renew) {
  res.before = lowest(rep);
  const auto until = covered_until(rep);
  renew = o.to == BaselineLevel::LTA && o.renew_before && until &&
          *until - Clock::now() < *o.renew_before;
  if (res.before >= o.to && !renew) {
    res.after = res.before;
    res.covered_until = until;
    return true;
  }
  return false;
}

// The level reached, or why not (the file is then left as it was).
void require_reached(ExtendResult& res, const VerifyReport& rep, const ExtendOptions& o) {
  res.after = lowest(rep);
  res.covered_until = covered_until(rep);
  if (res.after >= o.to) return;
  std::string why;
  for (const auto& s : rep.signatures)
    if (!s.long_term.problem.empty()) why = s.id + ": " + s.long_term.problem;
  throw Error(ErrorCode::CertRevocationUnknown, res.file + " could not be brought to " +
                                                    std::string(to_string(o.to)) +
                                                    (why.empty() ? "" : ": " + why));
}

// Written beside the file, then renamed over it: the file is either as it was or complete.
void replace_file(const std::string& path, const Bytes& data) {
  const std::string tmp = path + ".kyso-tmp";
  write_file(tmp, data);
  std::filesystem::rename(tmp, path);
}

VerifyOptions level_options(const ExtendOptions& o) {
  VerifyOptions v;
  v.anchors = o.trust.anchors;
  v.intermediates = o.trust.intermediates;
  v.check_revocation = false;  // the level does not depend on asking responders now
  v.timeout = o.trust.timeout;
  v.content = o.content;
  return v;
}

const TsaConfig& need_tsa(const ExtendOptions& o, const char* why) {
  if (!o.tsa) throw Error(ErrorCode::TsaNotConfigured, why);
  return *o.tsa;
}

class PdfExtender {
 public:
  PdfExtender(const std::string& path, const ExtendOptions& o)
      : path_(path), tmp_(path + ".kyso-tmp"), o_(o), pdf_(read_file(path)) {
    vo_ = level_options(o);
  }
  PdfExtender(const PdfExtender&) = delete;
  PdfExtender& operator=(const PdfExtender&) = delete;
  PdfExtender(PdfExtender&&) = delete;
  PdfExtender& operator=(PdfExtender&&) = delete;
  ~PdfExtender() {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }

  ExtendResult run() {
    ExtendResult res;
    res.file = path_;
    res.kind = "pdf";
    const std::uint64_t size_before = pdf_.size();
    VerifyReport rep = verify_file(path_, vo_);
    require_intact(rep);
    bool renew = false;
    if (already_there(res, rep, o_, renew)) return res;
    // A signature with no proof of time gets one first: a document timestamp over it.
    if (std::ranges::any_of(rep.signatures, [](const SignatureReport& s) {
          return !s.timestamp && s.long_term.level < BaselineLevel::LT &&
                 s.long_term.archive_timestamps.empty();
        })) {
      pdf_ = detail::append_document_timestamp(
          pdf_, need_tsa(o_, "a signature without a timestamp needs one (configure a TSA)"));
      res.added.emplace_back("document timestamp (proof of time)");
      rep = verify_current();
    }
    // The validation data of the signatures below B-LT and of every timestamp.
    if (lowest(rep) < BaselineLevel::LT) {
      std::vector<std::string> below;
      for (const auto& s : rep.signatures)
        if (s.long_term.level < BaselineLevel::LT) below.push_back(s.id);
      add_validation_data(res, [&](const detail::PdfSignatureBlob& b) {
        return b.document_timestamp || std::ranges::find(below, b.field) != below.end();
      });
      rep = verify_current();
    }
    if (o_.to == BaselineLevel::LTA && (lowest(rep) < BaselineLevel::LTA || renew)) {
      std::string field;
      pdf_ = detail::append_document_timestamp(
          pdf_, need_tsa(o_, "B-LTA needs an archive timestamp (configure a TSA)"), &field);
      res.added.push_back("archive timestamp " + field);
      add_validation_data(res, [&](const detail::PdfSignatureBlob& b) { return b.field == field; });
      rep = verify_current();
    }
    require_reached(res, rep, o_);
    replace_file(path_, pdf_);
    res.changed = true;
    res.bytes_added = pdf_.size() - size_before;
    return res;
  }

 private:
  VerifyReport verify_current() {
    write_file(tmp_, pdf_);
    VerifyReport rep = verify_file(tmp_, vo_);
    require_intact(rep);
    return rep;
  }

  template <typename Pick>
  void add_validation_data(ExtendResult& res, const Pick& pick) {
    QPDF q;
    q.setSuppressWarnings(true);
    q.setAttemptRecovery(false);
    ValidationData have;
    std::vector<detail::PdfSignatureBlob> blobs;
    try {
      q.processMemoryFile(path_.c_str(), reinterpret_cast<const char*>(pdf_.data()), pdf_.size());
      have = detail::read_dss(q);
      blobs = detail::pdf_signature_blobs(q);
    } catch (...) {
      detail::rethrow_as_document_error();
    }
    ValidationData want = have;
    for (const auto& b : blobs) {
      if (!pick(b)) continue;
      for (const auto& c : chains_in_cms(b.contents))
        collect_validation_data(c.leaf, c.extra, o_.trust, want);
    }
    const ValidationData add = missing(have, want);
    if (add.empty()) return;
    pdf_ = detail::append_dss(pdf_, add);
    res.added.push_back(describe("DSS", add));
  }

  std::string path_;
  std::string tmp_;
  const ExtendOptions& o_;
  Bytes pdf_;
  VerifyOptions vo_;
};

// XAdES: validation data and archive timestamps go into the signatures no other signature
// covers (changing a covered one would break the ones covering it); they cover the inner ones.
class XmlExtender {
 public:
  XmlExtender(const std::string& path, const ExtendOptions& o)
      : path_(path), o_(o), xml_(read_file(path)) {
    vo_ = level_options(o);
  }

  ExtendResult run() {
    ExtendResult res;
    res.file = path_;
    res.kind = "xml";
    VerifyReport rep = verify_bytes(xml_);
    require_intact(rep);
    bool renew = false;
    if (already_there(res, rep, o_, renew)) return res;
    doc_ = detail::parse_xml(xml_);
    detail::index_ids(xmlDocGetRootElement(doc_.get()), ids_, sigs_);
    std::vector<xmlNodePtr> outer;
    for (xmlNodePtr s : sigs_) {
      if (std::ranges::none_of(
              sigs_, [&](xmlNodePtr t) { return detail::covers(doc_.get(), t, s, ids_); }))
        outer.push_back(s);
    }
    for (xmlNodePtr o : outer) {
      if (detail::child(o, "Object") == nullptr || qualifying(o) == nullptr) {
        throw Error(ErrorCode::NotSupported,
                    path_ + ": signature " + detail::attr(o, "Id") +
                        " is plain XML-DSig, which cannot carry validation data; sign with "
                        "XAdES (B-T) to archive it");
      }
    }
    bool need_data = lowest(rep) < BaselineLevel::LT;
    for (xmlNodePtr o : outer) {
      if (detail::children_named(usp(o), "SignatureTimeStamp").empty()) {
        add_signature_timestamp(o);
        res.added.push_back("signature timestamp on " + detail::attr(o, "Id"));
        need_data = true;
      }
    }
    if (need_data) {
      for (xmlNodePtr o : outer) {
        ValidationData want = detail::xml_validation_data(o);
        const ValidationData have = want;
        for (std::size_t i = 0; i < sigs_.size(); ++i) {
          xmlNodePtr s = sigs_[i];
          if (s != o && !detail::covers(doc_.get(), o, s, ids_)) continue;
          const bool below =
              i >= rep.signatures.size() || rep.signatures[i].long_term.level < BaselineLevel::LT;
          if (below) collect_signature(s, want);
        }
        collect_timestamps(o, want);
        add_values(o, missing(have, want), res);
      }
    }
    if (o_.to == BaselineLevel::LTA) {
      for (xmlNodePtr o : outer) {
        add_archive_timestamp(o);
        res.added.push_back("archive timestamp on " + detail::attr(o, "Id"));
      }
    }
    const Bytes out = serialize();
    rep = verify_bytes(out);
    require_intact(rep);
    require_reached(res, rep, o_);
    replace_file(path_, out);
    res.changed = true;
    res.bytes_added = out.size() > xml_.size() ? out.size() - xml_.size() : 0;
    return res;
  }

 private:
  VerifyReport verify_bytes(const Bytes& xml) const {
    VerifyReport r;
    r.file = path_;
    r.kind = "xml";
    r.signatures = detail::verify_xml(xml, vo_);
    return r;
  }

  static xmlNodePtr qualifying(xmlNodePtr sig) {
    for (xmlNodePtr c = sig->children; c != nullptr; c = c->next) {
      if (!detail::is_ds(c, "Object")) continue;
      if (xmlNodePtr qp = detail::child(c, "QualifyingProperties")) return qp;
    }
    return nullptr;
  }

  xmlNsPtr xades(xmlNodePtr at) const {
    return xmlSearchNsByHref(doc_.get(), at, reinterpret_cast<const xmlChar*>(detail::kXadesNs));
  }

  // UnsignedProperties/UnsignedSignatureProperties, made when missing.
  xmlNodePtr usp(xmlNodePtr sig) const {
    xmlNodePtr qp = qualifying(sig);
    xmlNsPtr xa = xades(qp);
    xmlNodePtr up = detail::child(qp, "UnsignedProperties");
    if (up == nullptr) up = xmlNewChild(qp, xa, X("UnsignedProperties"), nullptr);
    xmlNodePtr u = detail::child(up, "UnsignedSignatureProperties");
    if (u == nullptr) u = xmlNewChild(up, xa, X("UnsignedSignatureProperties"), nullptr);
    return u;
  }

  static const xmlChar* X(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

  void add_signature_timestamp(xmlNodePtr sig) {
    const TsaConfig& tsa =
        need_tsa(o_, "a signature without a timestamp needs one (configure a TSA)");
    const std::string sv =
        detail::c14n_string(doc_.get(), detail::child(sig, "SignatureValue"), nullptr);
    const Timestamp ts = request_timestamp(tsa, detail::as_bytes(sv));
    xmlNodePtr u = usp(sig);
    xmlNodePtr st = xmlNewChild(u, xades(u), X("SignatureTimeStamp"), nullptr);
    xmlNewProp(xmlNewChild(st, ds(sig), X("CanonicalizationMethod"), nullptr), X("Algorithm"),
               X(detail::kC14n));
    xmlNewTextChild(st, xades(u), X("EncapsulatedTimeStamp"), X(to_base64(ts.token).c_str()));
  }

  xmlNsPtr ds(xmlNodePtr sig) const {
    return xmlSearchNsByHref(doc_.get(), sig, X(detail::kDsigNs));
  }

  void collect_signature(xmlNodePtr s, ValidationData& want) const {
    std::vector<Bytes> certs;
    xmlNodePtr x509 = detail::child(detail::child(s, "KeyInfo"), "X509Data");
    for (xmlNodePtr c : detail::children_named(x509, "X509Certificate"))
      certs.push_back(detail::b64_text(c));
    if (!certs.empty()) collect_validation_data(certs.front(), certs, o_.trust, want);
    for (xmlNodePtr st :
         detail::children_named(detail::unsigned_signature_properties(s), "SignatureTimeStamp")) {
      for (const auto& c :
           chains_in_cms(detail::b64_text(detail::child(st, "EncapsulatedTimeStamp"))))
        collect_validation_data(c.leaf, c.extra, o_.trust, want);
    }
  }

  void collect_timestamps(xmlNodePtr o, ValidationData& want) const {
    for (const char* name : {"SignatureTimeStamp", "ArchiveTimeStamp"}) {
      for (xmlNodePtr st : detail::children_named(detail::unsigned_signature_properties(o), name)) {
        for (const auto& c :
             chains_in_cms(detail::b64_text(detail::child(st, "EncapsulatedTimeStamp"))))
          collect_validation_data(c.leaf, c.extra, o_.trust, want);
      }
    }
  }

  // Before any archive timestamp: into CertificateValues / RevocationValues; after one (it
  // covers what precedes it): a new xadesv141:TimeStampValidationData at the end.
  void add_values(xmlNodePtr sig, const ValidationData& add, ExtendResult& res) {
    if (add.empty()) return;
    xmlNodePtr u = usp(sig);
    xmlNsPtr xa = xades(u);
    xmlNodePtr holder = u;
    if (!detail::children_named(u, "ArchiveTimeStamp").empty()) {
      holder = xmlNewChild(u, nullptr, X("TimeStampValidationData"), nullptr);
      xmlSetNs(holder, xmlNewNs(holder, X(detail::kXades141Ns), X("xadesv141")));
    }
    auto section = [&](const char* name) {
      if (holder == u) {
        if (xmlNodePtr existing = detail::child(u, name)) return existing;
      }
      return xmlNewChild(holder, xa, X(name), nullptr);
    };
    if (!add.certs.empty()) {
      xmlNodePtr cv = section("CertificateValues");
      for (const auto& c : add.certs)
        xmlNewTextChild(cv, xa, X("EncapsulatedX509Certificate"), X(to_base64(c).c_str()));
    }
    if (!add.ocsps.empty() || !add.crls.empty()) {
      xmlNodePtr rv = section("RevocationValues");
      if (!add.crls.empty()) {
        xmlNodePtr cl = detail::child(rv, "CRLValues");
        if (cl == nullptr) cl = xmlNewChild(rv, xa, X("CRLValues"), nullptr);
        for (const auto& c : add.crls)
          xmlNewTextChild(cl, xa, X("EncapsulatedCRLValue"), X(to_base64(c).c_str()));
      }
      if (!add.ocsps.empty()) {
        xmlNodePtr ol = detail::child(rv, "OCSPValues");
        if (ol == nullptr) ol = xmlNewChild(rv, xa, X("OCSPValues"), nullptr);
        for (const auto& c : add.ocsps)
          xmlNewTextChild(ol, xa, X("EncapsulatedOCSPValue"), X(to_base64(c).c_str()));
      }
    }
    res.added.push_back(describe(("values in " + detail::attr(sig, "Id")).c_str(), add));
  }

  void add_archive_timestamp(xmlNodePtr sig) {
    const TsaConfig& tsa = need_tsa(o_, "B-LTA needs an archive timestamp (configure a TSA)");
    const Bytes digest = detail::archive_digest(doc_.get(), sig, nullptr, ids_, tsa.hash);
    const Timestamp ts = detail::request_timestamp_for_digest(tsa, digest);
    xmlNodePtr u = usp(sig);
    xmlNodePtr at = xmlNewChild(u, nullptr, X("ArchiveTimeStamp"), nullptr);
    xmlSetNs(at, xmlNewNs(at, X(detail::kXades141Ns), X("xadesv141")));
    xmlNewProp(xmlNewChild(at, ds(sig), X("CanonicalizationMethod"), nullptr), X("Algorithm"),
               X(detail::kC14n));
    xmlNewTextChild(at, xades(u), X("EncapsulatedTimeStamp"), X(to_base64(ts.token).c_str()));
    // The archive timestamp's own validation data, after it.
    ValidationData want;
    for (const auto& c : chains_in_cms(ts.token))
      collect_validation_data(c.leaf, c.extra, o_.trust, want);
    ExtendResult ignored;
    add_values(sig, want, ignored);
  }

  Bytes serialize() const {
    xmlChar* buf = nullptr;
    int len = 0;
    xmlDocDumpMemoryEnc(doc_.get(), &buf, &len, "UTF-8");
    if (buf == nullptr) throw Error(ErrorCode::Internal, "XML serialization failed");
    Bytes out(buf, buf + len);
    xmlFree(buf);
    return out;
  }

  std::string path_;
  const ExtendOptions& o_;
  Bytes xml_;
  VerifyOptions vo_;
  detail::XmlDocPtr doc_;
  detail::XmlIds ids_;
  std::vector<xmlNodePtr> sigs_;
};

// CAdES: validation data into SignedData.certificates / .crls, archive-time-stamp-v3 on each
// signer; the DER is edited, never re-encoded, so every signature stays as it was.
class CmsExtender {
 public:
  CmsExtender(const std::string& path, const ExtendOptions& o)
      : path_(path), tmp_(path + ".kyso-tmp"), o_(o) {
    const Bytes raw = read_file(path);
    der_ = detail::pem_or_der(raw, path, &pem_label_);
    original_size_ = raw.size();
    vo_ = level_options(o);
  }
  CmsExtender(const CmsExtender&) = delete;
  CmsExtender& operator=(const CmsExtender&) = delete;
  CmsExtender(CmsExtender&&) = delete;
  CmsExtender& operator=(CmsExtender&&) = delete;
  ~CmsExtender() {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }

  ExtendResult run() {
    ExtendResult res;
    res.file = path_;
    res.kind = "cms";
    VerifyReport rep = verify_current();
    bool renew = false;
    if (already_there(res, rep, o_, renew)) return res;
    const std::size_t signers = detail::cms_signer_count(der_);
    bool need_data = lowest(rep) < BaselineLevel::LT;
    for (std::size_t i = 0; i < signers && i < rep.signatures.size(); ++i) {
      if (!rep.signatures[i].timestamp && rep.signatures[i].long_term.level < BaselineLevel::LT) {
        der_ = detail::cms_add_signature_timestamp(
            der_, i, need_tsa(o_, "a signature without a timestamp needs one (configure a TSA)"));
        res.added.push_back("signature timestamp on signer " + std::to_string(i + 1));
        need_data = true;
      }
    }
    if (need_data) {
      ValidationData have = detail::cms_validation_data(der_);
      ValidationData want = have;
      for (const auto& c : chains_in_cms(der_))
        collect_validation_data(c.leaf, c.extra, o_.trust, want);
      for (std::size_t i = 0; i < signers; ++i)
        for (const auto& t : detail::cms_archive_timestamps(der_, i, content_hash()))
          for (const auto& c : chains_in_cms(t))
            collect_validation_data(c.leaf, c.extra, o_.trust, want);
      append(missing(have, want), res);
    }
    if (o_.to == BaselineLevel::LTA) {
      const TsaConfig& tsa = need_tsa(o_, "B-LTA needs an archive timestamp (configure a TSA)");
      for (std::size_t i = 0; i < signers; ++i) {
        Bytes token;
        der_ = detail::cms_add_archive_timestamp(der_, i, content_hash(), tsa, &token);
        res.added.push_back("archive-time-stamp-v3 on signer " + std::to_string(i + 1));
        const ValidationData have = detail::cms_validation_data(der_);
        ValidationData want = have;
        for (const auto& c : chains_in_cms(token))
          collect_validation_data(c.leaf, c.extra, o_.trust, want);
        append(missing(have, want), res);
      }
    }
    rep = verify_current();
    require_reached(res, rep, o_);
    const Bytes out = encoded();
    replace_file(path_, out);
    res.changed = true;
    res.bytes_added = out.size() > original_size_ ? out.size() - original_size_ : 0;
    return res;
  }

 private:
  detail::ContentHash content_hash() const {
    return [this](HashAlgorithm h) -> Bytes {
      if (!o_.content.empty()) return digest(openssl_md_name(h), read_file(o_.content));
      const unsigned char* p = der_.data();
      detail::CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der_.size())));
      ASN1_OCTET_STRING** pos = cms ? CMS_get0_content(cms.get()) : nullptr;
      if (pos == nullptr || *pos == nullptr) {
        throw Error(ErrorCode::BadRequest,
                    path_ + " is a detached signature: give the signed file with --content");
      }
      return digest(openssl_md_name(h), {ASN1_STRING_get0_data(*pos),
                                         static_cast<std::size_t>(ASN1_STRING_length(*pos))});
    };
  }

  void append(const ValidationData& add, ExtendResult& res) {
    if (add.empty()) return;
    der_ = detail::cms_append_validation_data(der_, add);
    res.added.push_back(describe("SignedData certificates/crls", add));
  }

  VerifyReport verify_current() {
    (void)content_hash()(HashAlgorithm::Sha256);  // a detached CMS without --content: say so
    write_file(tmp_, der_);
    VerifyReport rep = verify_file(tmp_, vo_);
    rep.file = path_;
    require_intact(rep);
    return rep;
  }

  Bytes encoded() const {
    if (pem_label_.empty()) return der_;
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio(bio.get(), pem_label_.c_str(), "", der_.data(), static_cast<long>(der_.size()));
    char* p = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &p);
    return {reinterpret_cast<std::uint8_t*>(p), reinterpret_cast<std::uint8_t*>(p) + n};
  }

  std::string path_;
  std::string tmp_;
  const ExtendOptions& o_;
  Bytes der_;
  std::string pem_label_;
  std::size_t original_size_ = 0;
  VerifyOptions vo_;
};

}  // namespace

ExtendResult extend_file(const std::string& path, const ExtendOptions& o) {
  if (o.to != BaselineLevel::LT && o.to != BaselineLevel::LTA) {
    throw Error(ErrorCode::BadRequest, "extend goes to B-LT or B-LTA");
  }
  std::string head(1024, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (head.find("%PDF-") != std::string::npos) return PdfExtender(path, o).run();
  std::size_t first = head.find_first_not_of(" \t\r\n");
  if (head.rfind("\xEF\xBB\xBF", 0) == 0) first = 3;
  if (first != std::string::npos && head[first] == '<') return XmlExtender(path, o).run();
  if (head.rfind("-----BEGIN", 0) == 0 ||
      (!head.empty() && static_cast<unsigned char>(head[0]) == 0x30)) {
    return CmsExtender(path, o).run();
  }
  throw Error(ErrorCode::DocumentInvalid, path + " is neither XML, PDF nor CMS");
}

}  // namespace kyso::formats
