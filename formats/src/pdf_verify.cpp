// PAdES verification: every signature field's /ByteRange streamed through the digest, the CMS
// checked against it, and what later revisions changed: only signatures and form fields added,
// or the content the signer saw.

#include <qpdf/FileInputSource.hh>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "der.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "pdf_longterm.hpp"
#include "pdf_scan.hpp"
#include "tsa_digest.hpp"
#include "verify_common.hpp"

namespace kyso::formats::detail {
namespace {

struct SigField {
  std::string name;
  QPDFObjectHandle value;
};

void collect(QPDFObjectHandle fields, const std::string& prefix, std::vector<SigField>& out,
             int depth) {
  if (!fields.isArray() || depth > 32) return;
  for (auto& f : fields.getArrayAsVector()) {
    if (!f.isDictionary()) continue;
    const std::string partial = f.getKey("/T").isString() ? f.getKey("/T").getUTF8Value() : "";
    const std::string name = prefix.empty() ? partial : prefix + "." + partial;
    if (f.getKey("/Kids").isArray()) collect(f.getKey("/Kids"), name, out, depth + 1);
    if (f.getKey("/FT").isName() && f.getKey("/FT").getName() == "/Sig" &&
        f.getKey("/V").isDictionary()) {
      out.push_back({name, f.getKey("/V")});
    }
  }
}

// The file cut at `limit`: the revision a signature covers, read by qpdf as if it were the whole
// file (it finds that revision's startxref at the end), without copying it.
class PrefixInputSource : public InputSource {
 public:
  PrefixInputSource(const std::string& path, qpdf_offset_t limit)
      : file_(path.c_str()), limit_(limit), name_(path + " (signed revision)") {}
  qpdf_offset_t findAndSkipNextEOL() override {
    std::array<char, 512> buf{};
    qpdf_offset_t eol = -1;
    for (;;) {
      const qpdf_offset_t at = tell();
      const std::size_t n = read(buf.data(), buf.size());
      if (n == 0) return eol < 0 ? tell() : eol;
      for (std::size_t i = 0; i < n; ++i) {
        const bool is_eol = buf.at(i) == '\r' || buf.at(i) == '\n';
        if (eol < 0 && is_eol) eol = at + static_cast<qpdf_offset_t>(i);
        if (eol >= 0 && !is_eol) {
          seek(at + static_cast<qpdf_offset_t>(i), SEEK_SET);
          return eol;
        }
      }
    }
  }
  [[nodiscard]] std::string const& getName() const override { return name_; }
  qpdf_offset_t tell() override { return file_.tell(); }
  void seek(qpdf_offset_t offset, int whence) override {
    const qpdf_offset_t base = whence == SEEK_END ? limit_ : whence == SEEK_CUR ? tell() : 0;
    const qpdf_offset_t to = base + offset;
    if (to < 0) throw std::runtime_error(name_ + ": seek before the start");
    file_.seek(std::min(to, limit_), SEEK_SET);
  }
  void rewind() override { seek(0, SEEK_SET); }
  std::size_t read(char* out, std::size_t length) override {
    const qpdf_offset_t at = tell();
    setLastOffset(at);
    const auto left = static_cast<std::size_t>(std::max<qpdf_offset_t>(0, limit_ - at));
    return file_.read(out, std::min(length, left));
  }
  void unreadCh(char ch) override { file_.unreadCh(ch); }

 private:
  FileInputSource file_;
  qpdf_offset_t limit_;
  std::string name_;
};

bool is_name(QPDFObjectHandle o, const char* key, const char* value) {
  return o.isDictionary() && o.getKey(key).isName() && o.getKey(key).getName() == value;
}

// A field's type, inherited from its parents.
std::string field_type(QPDFObjectHandle o) {
  for (int depth = 0; o.isDictionary() && depth < 32; ++depth, o = o.getKey("/Parent")) {
    if (o.getKey("/FT").isName()) return o.getKey("/FT").getName();
  }
  return {};
}

std::set<std::string> refs_in(QPDFObjectHandle array) {
  std::set<std::string> out;
  for (auto& item : array.isArray() ? array.getArrayAsVector() : std::vector<QPDFObjectHandle>{})
    out.insert(item.unparse());
  return out;
}

// Keys whose values differ between two dictionaries.
std::vector<std::string> changed_keys(QPDFObjectHandle before, QPDFObjectHandle after) {
  std::set<std::string> keys;
  for (const auto& k : before.getKeys()) keys.insert(k);
  for (const auto& k : after.getKeys()) keys.insert(k);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (before.getKey(k).unparse() != after.getKey(k).unparse()) out.push_back(k);
  }
  return out;
}

bool only(const std::vector<std::string>& keys, std::initializer_list<const char*> allowed) {
  return std::ranges::all_of(keys, [&](const std::string& k) {
    return std::ranges::any_of(allowed, [&](const char* a) { return k == a; });
  });
}

// Compares the revision a signature covers (the first `signed_end` bytes) with the whole file:
// every object defined after it must be new, or an old one changed only the way adding a
// signature or a form field changes it (catalog /AcroForm, form /Fields and /SigFlags, a page's
// /Annots growing by widgets, an empty signature field getting its value).
PdfLaterChanges later_changes(QPDF& whole, const std::string& path, std::uint64_t signed_end) {
  PdfLaterChanges c;
  c.kind = PdfLaterChanges::Kind::SignaturesOrFormFields;
  auto changed = [&](const QPDFObjGen& og, const std::string& what) {
    c.kind = PdfLaterChanges::Kind::ContentChanged;
    c.changed.push_back(og.unparse(' ') + " R" + (what.empty() ? "" : " (" + what + ")"));
  };
  QPDF old;
  old.setSuppressWarnings(true);
  old.setAttemptRecovery(false);
  try {
    old.processInputSource(
        std::make_shared<PrefixInputSource>(path, static_cast<qpdf_offset_t>(signed_end)));
  } catch (const std::exception& e) {
    c.kind = PdfLaterChanges::Kind::ContentChanged;
    c.changed.emplace_back(std::string("the signed revision cannot be read: ") + e.what());
    return c;
  }
  const auto old_xref = old.getXRefTable();
  const auto new_xref = whole.getXRefTable();
  auto later = [&](const QPDFXRefEntry& e) {
    if (e.getType() == 1) return static_cast<std::uint64_t>(e.getOffset()) >= signed_end;
    if (e.getType() == 2) {
      const auto it = new_xref.find(QPDFObjGen(e.getObjStreamNumber(), 0));
      return it == new_xref.end() || it->second.getType() != 1 ||
             static_cast<std::uint64_t>(it->second.getOffset()) >= signed_end;
    }
    return false;
  };
  for (const auto& [og, e] : old_xref) {
    if (!new_xref.contains(og)) changed(og, "removed");
  }
  // Trailer: same catalog, same document information, no encryption added.
  for (const char* key : {"/Root", "/Info", "/Encrypt"}) {
    if (old.getTrailer().getKey(key).unparse() != whole.getTrailer().getKey(key).unparse()) {
      c.kind = PdfLaterChanges::Kind::ContentChanged;
      c.changed.push_back(std::string("trailer ") + key);
    }
  }
  std::map<std::string, int> page_numbers;
  int page_no = 0;
  for (auto& p : old.getAllPages()) page_numbers[p.getObjGen().unparse(' ')] = ++page_no;
  const QPDFObjGen root = old.getRoot().getObjGen();
  const QPDFObjectHandle old_form = old.getRoot().getKey("/AcroForm");

  for (const auto& [og, e] : new_xref) {
    if (!later(e) || e.getType() == 0) continue;
    QPDFObjectHandle now = whole.getObjectByObjGen(og);
    if (!old_xref.contains(og)) {
      // New objects: counted when they are signatures or form fields; anything else new (fonts,
      // appearances) is harmless unless a changed old object points to it, checked below.
      if (now.isDictionary() && now.getKey("/ByteRange").isArray() &&
          now.getKey("/Contents").isString()) {
        ++c.signatures_added;
      } else if (is_name(now, "/Subtype", "/Widget") && field_type(now) != "/Sig") {
        ++c.form_fields_added;
      }
      continue;
    }
    QPDFObjectHandle before = old.getObjectByObjGen(og);
    if (before.isStream() != now.isStream()) {
      changed(og, "type");
      continue;
    }
    if (before.isStream()) {
      if (before.getDict().unparse() != now.getDict().unparse() ||
          before.getRawStreamData()->getSize() != now.getRawStreamData()->getSize() ||
          std::memcmp(before.getRawStreamData()->getBuffer(), now.getRawStreamData()->getBuffer(),
                      before.getRawStreamData()->getSize()) != 0) {
        changed(og, "stream");
      }
      continue;
    }
    if (before.unparse() == now.unparse()) continue;  // rewritten unchanged
    if (!before.isDictionary() || !now.isDictionary()) {
      changed(og, "");
      continue;
    }
    const auto keys = changed_keys(before, now);
    std::string list;
    for (const auto& k : keys) list += (list.empty() ? "" : " ") + k;
    if (og == root) {
      if (!only(keys, {"/AcroForm", "/DSS"})) changed(og, "catalog: " + list);
      continue;
    }
    if (old_form.isIndirect() && og == old_form.getObjGen()) {
      const auto gone = refs_in(before.getKey("/Fields"));
      const auto kept = refs_in(now.getKey("/Fields"));
      if (!only(keys, {"/Fields", "/SigFlags", "/DR", "/DA", "/NeedAppearances"}) ||
          !std::ranges::includes(kept, gone)) {
        changed(og, "form: " + list);
      }
      continue;
    }
    if (page_numbers.contains(og.unparse(' '))) {
      const std::string page = "page " + std::to_string(page_numbers[og.unparse(' ')]);
      if (!only(keys, {"/Annots"})) {
        changed(og, page + ": " + list);
        continue;
      }
      const auto was = refs_in(before.getKey("/Annots"));
      bool ok = std::ranges::includes(refs_in(now.getKey("/Annots")), was);
      for (auto& a : now.getKey("/Annots").isArray() ? now.getKey("/Annots").getArrayAsVector()
                                                     : std::vector<QPDFObjectHandle>{}) {
        if (!was.contains(a.unparse()) && !is_name(a, "/Subtype", "/Widget")) ok = false;
      }
      if (!ok) changed(og, page + ": annotations other than form fields");
      continue;
    }
    // An empty signature field signed later: only its value and appearance change.
    if (field_type(before) == "/Sig" && before.getKey("/V").isNull() &&
        only(keys, {"/V", "/AP", "/AS"})) {
      continue;
    }
    changed(og, list);
  }
  return c;
}

std::optional<std::chrono::system_clock::time_point> pdf_date(const std::string& s) {
  int y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0;
  if (std::sscanf(s.c_str(), "D:%4d%2d%2d%2d%2d%2d", &y, &mo, &d, &h, &mi, &sec) < 1)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = utc_time_point(tm);
  if (s.size() > 16 && (s[16] == '+' || s[16] == '-')) {
    int oh = 0, om = 0;
    std::sscanf(s.c_str() + 17, "%2d'%2d", &oh, &om);
    const auto off = std::chrono::hours(oh) + std::chrono::minutes(om);
    t = s[16] == '+' ? t - off : t + off;
  }
  return t;
}

// A signature field's /ByteRange and /Contents, checked: the gap must be exactly the /Contents
// string, so nothing else goes unsigned. Empty `contents` with `why` set when malformed.
struct Ranges {
  std::vector<long long> br;
  Bytes contents;
  std::string why;
};

Ranges read_ranges(QPDFObjectHandle value, std::uint64_t size) {
  Ranges r;
  try {
    QPDFObjectHandle range = value.getKey("/ByteRange");
    for (auto& v : range.isArray() ? range.getArrayAsVector() : std::vector<QPDFObjectHandle>{}) {
      r.br.push_back(v.isInteger() ? v.getIntValue() : -1);
    }
    const std::string contents =
        value.getKey("/Contents").isString() ? value.getKey("/Contents").getStringValue() : "";
    r.contents.assign(contents.begin(), contents.end());
  } catch (const std::exception& e) {
    r.why = e.what();
    r.contents.clear();
    return r;
  }
  const auto& br = r.br;
  if (br.size() != 4 || br[0] != 0 || br[1] < 0 || br[2] < br[1] || br[3] < 0 ||
      static_cast<std::uint64_t>(br[2] + br[3]) > size || r.contents.empty() ||
      static_cast<std::uint64_t>(br[2] - br[1]) !=
          2 * static_cast<std::uint64_t>(r.contents.size()) + 2) {
    r.why = "malformed /ByteRange or /Contents";
    r.contents.clear();
  }
  return r;
}

ContentDigest ranges_digest(const std::string& path, std::vector<long long> br) {
  return [path, br](const EVP_MD* md) {
    std::ifstream in(path, std::ios::binary);
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_DigestInit_ex(ctx.get(), md, nullptr);
    std::vector<char> buf(1 << 20);
    for (const auto& [start, len] : {std::pair{br[0], br[1]}, std::pair{br[2], br[3]}}) {
      in.seekg(start);
      for (long long left = len; left > 0;) {
        in.read(buf.data(), static_cast<std::streamsize>(
                                std::min<long long>(left, static_cast<long long>(buf.size()))));
        const auto n = in.gcount();
        if (n <= 0) break;
        EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
        left -= n;
      }
    }
    Bytes d(static_cast<std::size_t>(EVP_MD_get_size(md)));
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
    return d;
  };
}

bool is_document_timestamp(QPDFObjectHandle v) {
  return is_name(v, "/Type", "/DocTimeStamp") || is_name(v, "/SubFilter", "/ETSI.RFC3161");
}

}  // namespace

std::vector<SignatureReport> verify_pdf(const std::string& path, const VerifyOptions& o,
                                        std::vector<DocumentTimestampReport>* stamps) {
  QPDF q;
  q.setSuppressWarnings(true);
  q.setAttemptRecovery(false);
  std::vector<SigField> fields;
  LongTermInputs document;
  try {
    q.processFile(path.c_str());
    if (q.isEncrypted()) throw Error(ErrorCode::DocumentEncrypted, path + " is encrypted");
    QPDFObjectHandle acro = q.getRoot().getKey("/AcroForm");
    if (acro.isDictionary()) collect(acro.getKey("/Fields"), "", fields, 0);
    document.data = read_dss(q);
  } catch (...) {
    detail::rethrow_as_document_error();
  }
  document.claims_long_term = !document.data.empty();
  const std::uint64_t size = std::filesystem::file_size(path);

  // Document timestamps first: each covers the signatures whose revisions precede it.
  std::vector<std::pair<long long, Bytes>> archive;  // (start of its /Contents, token)
  for (auto& f : fields) {
    if (!is_document_timestamp(f.value)) continue;
    DocumentTimestampReport t;
    t.id = f.name;
    const Ranges rg = read_ranges(f.value, size);
    if (rg.contents.empty()) {
      t.detail = rg.why;
    } else {
      const ContentDigest ranges = ranges_digest(path, rg.br);
      t.time = detail::verify_timestamp_digest(
          rg.contents, [&](HashAlgorithm h) { return ranges(evp_md(h)); }, {}, t.detail);
      if (t.time) archive.emplace_back(rg.br[1], rg.contents);
    }
    if (stamps != nullptr) stamps->push_back(std::move(t));
  }
  std::ranges::sort(archive, {}, &std::pair<long long, Bytes>::first);

  std::map<std::uint64_t, PdfLaterChanges> changes_after;  // by the end of the signed revision
  std::vector<SignatureReport> out;
  for (auto& f : fields) {
    if (is_document_timestamp(f.value)) continue;
    SignatureReport bad;
    bad.id = f.name;
    bad.format = "pades";
    std::string m;
    try {
      if (f.value.getKey("/M").isString()) m = f.value.getKey("/M").getUTF8Value();
    } catch (const std::exception&) {
      m.clear();
    }
    const Ranges rg = read_ranges(f.value, size);
    if (rg.contents.empty()) {
      bad.integrity_detail = rg.why;
      bad.integrity_failure = IntegrityFailure::Format;
      out.push_back(bad);
      continue;
    }
    const auto& br = rg.br;
    const Bytes& cms = rg.contents;
    const ContentDigest ranges = ranges_digest(path, br);
    LongTermInputs lt = document;
    for (const auto& [at, token] : archive) {
      if (at >= br[2] + br[3]) lt.archive_timestamps.push_back(token);
    }
    std::vector<SignatureReport> rs;
    try {
      rs = verify_cms(cms, &ranges, o, "pades", &lt);
    } catch (const Error& e) {
      bad.integrity_detail = e.detail();
      bad.integrity_failure = IntegrityFailure::Format;
      out.push_back(bad);
      continue;
    }
    if (rs.empty()) continue;
    SignatureReport r = std::move(rs.front());
    r.id = f.name;
    if (!r.signing_time && !m.empty()) r.signing_time = pdf_date(m);
    const auto signed_end = static_cast<std::uint64_t>(br[2] + br[3]);
    r.covers_whole_file = signed_end == size;
    if (signed_end == size) {
      r.later_changes = PdfLaterChanges{};
    } else {
      if (!changes_after.contains(signed_end)) {
        try {
          changes_after[signed_end] = later_changes(q, path, signed_end);
        } catch (const std::exception& e) {
          PdfLaterChanges c;
          c.kind = PdfLaterChanges::Kind::ContentChanged;
          c.changed.emplace_back(std::string("later revisions cannot be compared: ") + e.what());
          changes_after[signed_end] = c;
        }
      }
      r.later_changes = changes_after[signed_end];
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<PdfSignatureBlob> pdf_signature_blobs(QPDF& q) {
  std::vector<SigField> fields;
  QPDFObjectHandle acro = q.getRoot().getKey("/AcroForm");
  if (acro.isDictionary()) collect(acro.getKey("/Fields"), "", fields, 0);
  std::vector<PdfSignatureBlob> out;
  for (auto& f : fields) {
    QPDFObjectHandle c = f.value.getKey("/Contents");
    if (!c.isString()) continue;
    const std::string v = c.getStringValue();
    out.push_back({f.name, Bytes(v.begin(), v.end()), is_document_timestamp(f.value)});
  }
  return out;
}

}  // namespace kyso::formats::detail
