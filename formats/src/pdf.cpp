#include "kyso/formats/pdf.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFPageObjectHelper.hh>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "der.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/formats/cms.hpp"
#include "pdf_appearance.hpp"
#include "pdf_facts.hpp"
#include "pdf_longterm.hpp"
#include "pdf_scan.hpp"
#include "tsa_digest.hpp"
#include "two_phase.hpp"

namespace kyso::formats {
namespace {

std::string ref(const QPDFObjGen& og) {
  return std::to_string(og.getObj()) + " " + std::to_string(og.getGen()) + " R";
}

// A dictionary's entries as PDF text (qpdf's reading of it).
detail::PdfDictText dict_text(QPDFObjectHandle dict) {
  detail::PdfDictText out;
  for (auto& [key, value] : dict.getDictAsMap()) {
    if (value.isNull()) continue;
    out.emplace_back(QPDFObjectHandle::newName(key).unparse(), value.unparse());
  }
  return out;
}

// "<< /K v ... " of a dictionary minus some keys; the caller adds keys and closes it.
std::string open_dict_without(const detail::PdfDictText& dict, const std::set<std::string>& skip) {
  std::string out = "<<";
  for (const auto& [key, value] : dict) {
    if (skip.contains(key)) continue;
    out += " " + key + " " + value;
  }
  return out;
}
std::string open_dict_without(QPDFObjectHandle dict, const std::set<std::string>& skip) {
  return open_dict_without(dict_text(dict), skip);
}

std::string array_items(QPDFObjectHandle array) {
  std::string out;
  if (!array.isArray()) return out;
  for (auto& item : array.getArrayAsVector()) out += item.unparse() + " ";
  return out;
}

std::string pdf_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "(D:%Y%m%d%H%M%SZ)", &tm);
  return buf.data();
}

// Appends text to bytes as one copy (iterators of another element type copy byte by byte).
void append_text(Bytes& out, std::string_view text) {
  const auto b = detail::as_bytes(text);
  out.insert(out.end(), b.begin(), b.end());
}

std::string text_string(const std::string& utf8) {
  return QPDFObjectHandle::newUnicodeString(utf8).unparse();
}

// "23/11/2026 20:15:03 (GMT+7)": Vietnam's time (UTC+7 all year), as people read it.
std::string vietnam_time(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t + std::chrono::hours(7));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::array<char, 40> buf{};
  std::strftime(buf.data(), buf.size(), "%d/%m/%Y %H:%M:%S (GMT+7)", &tm);
  return buf.data();
}

// Files up to this size are read once and signed from memory (one read, one hash, one write);
// larger ones are streamed through the byte ranges so memory stays flat.
constexpr std::uint64_t kInMemoryLimit = std::uint64_t{8} << 20U;

struct Input {
  std::string path;  // the file, or a name for messages when signing bytes
  std::uint64_t size = 0;
  dev_t dev = 0;  // the file's identity, when read from one
  ino_t ino = 0;
  bool whole = false;     // `data` holds the entire file
  std::string storage;    // owns `data` when read from a file
  std::string_view data;  // the whole input when `whole`
};

Input read_input(const std::string& path) {
  Input in;
  in.path = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::DocumentInvalid, path + " is not a regular file");
  }
  in.size = static_cast<std::uint64_t>(st.st_size);
  in.dev = st.st_dev;
  in.ino = st.st_ino;
  if (in.size <= kInMemoryLimit) {
    in.storage.resize(static_cast<std::size_t>(in.size));
    std::size_t done = 0;
    while (done < in.storage.size()) {
      const ssize_t n = ::read(fd, in.storage.data() + done, in.storage.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    in.storage.resize(done);
    in.data = in.storage;
    in.size = done;
    in.whole = true;
  }
  ::close(fd);
  return in;
}

// Ends a revision: the cross-reference section of the file's own kind (a table with /Prev, or
// an uncompressed stream listing itself too) and the trailer. `xref`: object -> (offset, gen).
// `root`, `info`, `id`: the trailer's /Root, /Info and /ID as PDF text (empty: none).
void finish_revision(std::string& text, std::uint64_t base,
                     std::map<int, std::pair<std::uint64_t, int>>& xref, const std::string& root,
                     const std::string& info, const std::string& id, const detail::PdfSource& src,
                     int new_size) {
  std::string trailer_keys = " /Root " + root;
  if (!info.empty()) trailer_keys += " /Info " + info;
  if (!id.empty()) trailer_keys += " /ID " + id;
  trailer_keys += " /Prev " + std::to_string(src.startxref);

  if (!src.xref_stream) {
    const std::uint64_t xref_at = base + text.size();
    text += "xref\n";
    std::array<char, 40> line{};
    for (const auto& [num, entry] : xref) {
      std::snprintf(line.data(), line.size(), "%d 1\n%010llu %05d n \n", num,
                    static_cast<unsigned long long>(entry.first), entry.second);
      text += line.data();
    }
    text += "trailer\n<< /Size " + std::to_string(new_size) + trailer_keys + " >>\nstartxref\n" +
            std::to_string(xref_at) + "\n%%EOF\n";
  } else {
    // A cross-reference stream, uncompressed, listing itself too.
    const int xref_num = new_size;
    const std::uint64_t xref_at = base + text.size();
    xref[xref_num] = {xref_at, 0};
    unsigned width = 1;
    while ((xref_at >> (8U * width)) != 0) ++width;
    std::string rows;
    std::string index;
    for (const auto& [num, entry] : xref) {
      index += std::to_string(num) + " 1 ";
      rows += '\x01';
      for (unsigned b = width; b-- > 0;)
        rows += static_cast<char>((entry.first >> (8U * b)) & 0xFFU);
      rows += static_cast<char>((static_cast<unsigned>(entry.second) >> 8U) & 0xFFU);
      rows += static_cast<char>(static_cast<unsigned>(entry.second) & 0xFFU);
    }
    text += std::to_string(xref_num) + " 0 obj\n<< /Type /XRef /Size " +
            std::to_string(xref_num + 1) + " /Index [" + index + "] /W [1 " +
            std::to_string(width) + " 2]" + trailer_keys + " /Length " +
            std::to_string(rows.size()) + " >>\nstream\n" + rows +
            "\nendstream\nendobj\nstartxref\n" + std::to_string(xref_at) + "\n%%EOF\n";
  }
}

struct Update {
  std::string text;             // appended after the original bytes
  std::uint64_t base = 0;       // file offset where `text` starts
  std::size_t contents_lt = 0;  // index in text of '<' of /Contents
  std::size_t contents_gt = 0;  // index in text of '>' of /Contents
  std::string field_name;
};

constexpr std::string_view kByteRangeHolder = "[0 0000000000 0000000000 0000000000]";

// The facts read by qpdf (any PDF it opens): the page is the visible box's, or the first.
detail::PdfFacts facts_by_qpdf(const Input& in, const PdfSignOptions& o) {
  const std::string& input = in.path;
  QPDF q;
  q.setSuppressWarnings(true);
  q.setAttemptRecovery(false);  // a damaged file is refused, not silently rebuilt
  detail::PdfFacts f;
  try {
    if (in.whole) {
      q.processMemoryFile(input.c_str(), in.data.data(), in.data.size());
    } else {
      q.processFile(input.c_str());
    }
    if (q.isEncrypted()) {
      throw Error(ErrorCode::DocumentEncrypted, input + " is encrypted");
    }
    QPDFObjectHandle trailer = q.getTrailer();
    QPDFObjectHandle root = q.getRoot();
    const auto& pages = q.getAllPages();
    if (pages.empty()) throw Error(ErrorCode::DocumentInvalid, input + " has no pages");
    std::size_t page_index = 0;
    if (o.visible) {
      const auto count = static_cast<int>(pages.size());
      const int p = o.visible->page == 0 ? count : o.visible->page;
      if (p < 1 || p > count) {
        throw Error(ErrorCode::BadRequest, "page " + std::to_string(o.visible->page) +
                                               " does not exist (the PDF has " +
                                               std::to_string(count) + ")");
      }
      page_index = static_cast<std::size_t>(p - 1);
    }
    QPDFObjectHandle page = pages.at(page_index);
    f.size = trailer.getKey("/Size").getIntValueAsInt();
    if (f.size <= 0) throw Error(ErrorCode::DocumentInvalid, "trailer /Size missing");
    if (trailer.hasKey("/Info")) f.info = trailer.getKey("/Info").unparse();
    if (trailer.hasKey("/ID")) f.id = trailer.getKey("/ID").unparse();
    f.root = {root.getObjectID(), root.getGeneration()};
    f.root_dict = dict_text(root);

    QPDFObjectHandle acro = root.getKey("/AcroForm");
    if (acro.isDictionary()) {
      f.acro_form = true;
      f.acro_dict = dict_text(acro);
      if (acro.isIndirect()) {
        f.acro_indirect = true;
        f.acro = {acro.getObjectID(), acro.getGeneration()};
      }
      QPDFObjectHandle fields = acro.getKey("/Fields");
      f.fields = array_items(fields);
      if (fields.isArray()) {
        for (auto& field : fields.getArrayAsVector()) {
          if (field.isDictionary() && field.getKey("/T").isString())
            f.field_names.insert(field.getKey("/T").getUTF8Value());
        }
      }
    }
    f.page = {page.getObjectID(), page.getGeneration()};
    f.page_dict = dict_text(page);
    f.annots = array_items(page.getKey("/Annots"));
    if (o.visible) {
      // The box is placed relative to the page's lower-left corner (its MediaBox origin).
      QPDFObjectHandle media = QPDFPageObjectHelper(page).getMediaBox();
      std::vector<double> box;
      for (auto& item :
           media.isArray() ? media.getArrayAsVector() : std::vector<QPDFObjectHandle>{})
        if (item.isNumber()) box.push_back(item.getNumericValue());
      if (box.size() == 4) {
        f.media_llx = std::min(box[0], box[2]);
        f.media_lly = std::min(box[1], box[3]);
      }
    }
  } catch (...) {
    detail::rethrow_as_document_error();
  }
  return f;
}

// The revision that adds one signature field: `cred` signs it, or, when null, it is a document
// timestamp (/DocTimeStamp, ETSI.RFC3161: PAdES B-LTA's archive timestamp). The PDF is read
// directly when it is plain (pdf_facts.hpp), by qpdf otherwise; the update is written here
// from what was read, the same way for both.
Update build_update(const detail::PdfSource& src, const Input& in, const Credential* cred,
                    const PdfSignOptions& o, std::size_t reserve,
                    std::chrono::system_clock::time_point now) {
  std::optional<detail::PdfFacts> plain;
  if (in.whole && !o.visible) plain = detail::read_plain_pdf(in.data, src);
  const detail::PdfFacts f = plain ? std::move(*plain) : facts_by_qpdf(in, o);
  Update u;
  u.field_name = o.field_name;
  for (int n = 1;
       u.field_name.empty() || (o.field_name.empty() && f.field_names.contains(u.field_name));
       ++n) {
    u.field_name = (cred != nullptr ? "Signature" : "ArchiveTimestamp") + std::to_string(n);
  }
  if (f.field_names.contains(u.field_name)) {
    throw Error(ErrorCode::BadRequest, "the PDF already has a field named " + u.field_name);
  }

  const int size = f.size;
  const QPDFObjGen sig_og(size, 0);
  const QPDFObjGen widget_og(size + 1, 0);
  const int appearance_first = size + 2;
  std::vector<std::string> appearance;
  std::string rect = "[0 0 0 0]";
  if (o.visible) {
    const auto& v = *o.visible;
    if (!(v.width > 0 && v.height > 0)) {
      throw Error(ErrorCode::BadRequest, "the signature box needs a positive width and height");
    }
    const double llx = f.media_llx;
    const double lly = f.media_lly;
    const Credential& c = *cred;
    std::string role = v.role;
    if (role.empty()) {
      if (const auto r = guess_role(c.cert)) role = role_label(*r, Language::Vi);
    }
    std::vector<std::string> lines{"Ký bởi: " + (v.name.empty() ? c.cert.common_name : v.name)};
    if (!role.empty()) lines.push_back("Vai trò: " + role);
    lines.push_back("Thời gian ký: " + vietnam_time(now));
    appearance =
        detail::signature_appearance(appearance_first, v.width, v.height, lines, v.font_file);
    auto n = [](double d) {
      std::array<char, 32> b{};
      std::snprintf(b.data(), b.size(), "%.2f", d);
      return std::string(b.data());
    };
    rect = "[" + n(llx + v.x) + " " + n(lly + v.y) + " " + n(llx + v.x + v.width) + " " +
           n(lly + v.y + v.height) + "]";
  }
  const int new_size = appearance_first + static_cast<int>(appearance.size());
  u.base = src.size + (src.ends_with_newline ? 0 : 1);
  // The new objects, the changed page, form or catalog, the cross-reference section and the
  // trailer: a few kB, in one allocation.
  u.text.reserve(2 * reserve + 1024 + f.page_dict.size() * 64 + f.annots.size() + f.fields.size() +
                 f.root_dict.size() * 64 + f.acro_dict.size() * 64);
  if (!src.ends_with_newline) u.text += "\n";
  std::map<int, std::pair<std::uint64_t, int>> xref;  // obj -> (offset, gen)
  auto object = [&](const QPDFObjGen& og, const std::string& body) {
    xref[og.getObj()] = {u.base + u.text.size(), og.getGen()};
    u.text += std::to_string(og.getObj()) + " " + std::to_string(og.getGen()) + " obj\n" + body +
              "\nendobj\n";
  };

  // The signature dictionary, written in place (its /Contents is most of the update):
  // /Contents reserved as zeros, /ByteRange filled in below.
  xref[sig_og.getObj()] = {u.base + u.text.size(), 0};
  u.text += std::to_string(size) + " 0 obj\n";
  u.text += cred != nullptr
                ? "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached"
                : "<< /Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161";
  u.text += " /ByteRange ";
  const std::size_t byte_range_at = u.text.size();
  u.text += kByteRangeHolder;
  u.text += " /Contents <";
  u.contents_lt = u.text.size() - 1;
  u.text.append(reserve * 2, '0');
  u.contents_gt = u.text.size();
  u.text += '>';
  if (cred != nullptr) {
    u.text += " /M " + pdf_date(now);
    u.text += " /Name " + text_string(cred->cert.common_name);
    if (!o.reason.empty()) u.text += " /Reason " + text_string(o.reason);
    if (!o.location.empty()) u.text += " /Location " + text_string(o.location);
  }
  u.text += " >>\nendobj\n";

  const QPDFObjGen page_og(f.page.num, f.page.gen);
  object(widget_og,
         "<< /Type /Annot /Subtype /Widget /FT /Sig /T " + text_string(u.field_name) + " /V " +
             ref(sig_og) + " /F 132 /Rect " + rect +
             (appearance.empty() ? std::string()
                                 : " /AP << /N " + std::to_string(appearance_first) + " 0 R >>") +
             " /P " + ref(page_og) + " >>");
  for (std::size_t i = 0; i < appearance.size(); ++i) {
    object(QPDFObjGen(appearance_first + static_cast<int>(i), 0), appearance[i]);
  }
  object(page_og, open_dict_without(f.page_dict, {"/Annots"}) + " /Annots [" + f.annots +
                      ref(widget_og) + "] >>");
  const std::string form = open_dict_without(f.acro_dict, {"/Fields", "/SigFlags"}) + " /Fields [" +
                           f.fields + ref(widget_og) + "] /SigFlags 3 >>";
  if (f.acro_indirect) {
    object(QPDFObjGen(f.acro.num, f.acro.gen), form);
  } else {
    object(QPDFObjGen(f.root.num, f.root.gen),
           open_dict_without(f.root_dict, {"/AcroForm"}) + " /AcroForm " + form + " >>");
  }

  finish_revision(u.text, u.base, xref, detail::ref_text(f.root), f.info, f.id, src, new_size);

  // Now every offset is known: fill in the byte ranges, same width as the placeholder.
  const std::uint64_t b1 = u.base + u.contents_lt;
  const std::uint64_t c2 = u.base + u.contents_gt + 1;
  const std::uint64_t end = u.base + u.text.size();
  std::string br =
      "[0 " + std::to_string(b1) + " " + std::to_string(c2) + " " + std::to_string(end - c2);
  if (br.size() + 1 > kByteRangeHolder.size())
    throw Error(ErrorCode::DocumentInvalid, "PDF too large");
  br += std::string(kByteRangeHolder.size() - br.size() - 1, ' ') + "]";
  u.text.replace(byte_range_at, kByteRangeHolder.size(), br);
  return u;
}

// The new revision with /Contents still zeros, and the digest of the byte ranges it signs.
struct Signed {
  Update update;
  Bytes digest;
};

using StreamFile = std::function<void(const std::function<void(const char*, std::size_t)>&)>;

// The first step of every signature and timestamp: the update built over `in` and its byte
// ranges hashed with `hash` (from memory, or streamed from the file).
Signed prepare_input(const Credential* cred, const Input& in, const PdfSignOptions& o,
                     const StreamFile& stream_file, HashAlgorithm hash, std::size_t reserve) {
  const detail::PdfSource src =
      in.whole ? detail::inspect_pdf(in.data, in.path) : detail::inspect_pdf(in.path);
  const auto now = o.time.value_or(std::chrono::system_clock::now());
  Signed out{build_update(src, in, cred, o, reserve, now), {}};
  Update& u = out.update;

  EvpMdCtxPtr md(EVP_MD_CTX_new());
  detail::check(md && EVP_DigestInit_ex(md.get(), detail::evp_md(hash), nullptr) == 1, "digest");
  if (in.whole) {
    EVP_DigestUpdate(md.get(), in.data.data(), in.data.size());
  } else {
    stream_file([&](const char* p, std::size_t n) { EVP_DigestUpdate(md.get(), p, n); });
  }
  EVP_DigestUpdate(md.get(), u.text.data(), u.contents_lt);
  EVP_DigestUpdate(md.get(), u.text.data() + u.contents_gt + 1, u.text.size() - u.contents_gt - 1);
  out.digest.resize(digest_size(hash));
  unsigned int dlen = 0;
  detail::check(EVP_DigestFinal_ex(md.get(), out.digest.data(), &dlen) == 1, "digest");
  return out;
}

CmsOptions cms_options(const PdfSignOptions& o) {
  CmsOptions co;
  co.algorithm = o.algorithm;
  co.signing_time = false;  // PAdES: the time is the PDF's /M
  co.tsa = o.tsa;
  return co;
}

// A signature's room. B-B: the signer's CMS template at its largest (two_phase.hpp), which is
// what the signature's CMS is; a transcript's /Contents is 4 kB of CMS, not the 11 kB a fixed
// allowance gave it, most of it zeros written, copied and stored with every document. B-T: the
// CMS with the signer's certificates and a timestamp token, whose size only the TSA knows.
std::size_t reserve_for(const Credential& cred, const PdfSignOptions& o) {
  if (!o.tsa) return detail::cms_template_max_size(*detail::cms_template_for(cred, cms_options(o)));
  std::size_t reserve = 8192 + cred.cert.der.size();
  for (const auto& c : cred.chain) reserve += c.size();
  return reserve + 12288;
}

// A signature by `signer`: a detached CAdES (B-B, or B-T with o.tsa) over the byte ranges,
// prepared, signed and embedded (the steps of two-phase signing).
Signed sign_signature(Signer& signer, const Input& in, const PdfSignOptions& o,
                      const StreamFile& stream_file) {
  const Credential& cred = signer.credential();
  const std::size_t reserve = reserve_for(cred, o);
  Signed out = prepare_input(&cred, in, o, stream_file, hash_of(o.algorithm), reserve);
  const CmsOptions co = cms_options(o);
  char* contents = out.update.text.data() + out.update.contents_lt;
  if (!co.tsa) {
    // B-B: the signer's CMS template with this messageDigest and signature, the same bytes as
    // building and encoding the CMS anew (two_phase.hpp) for a fraction of the work.
    const auto t = detail::cms_template_for(cred, co);
    const Bytes sig = signer.sign_digest(o.algorithm, detail::cms_template_tbs(*t, out.digest),
                                         SignatureEncoding::Der);
    detail::write_contents(contents, reserve, detail::cms_template_fill(*t, out.digest, sig));
    return out;
  }
  detail::CmsPending cms = detail::cms_prepare(cred, out.digest, std::nullopt, co);
  const Bytes sig = signer.sign_digest(o.algorithm, cms.tbs, SignatureEncoding::Der);
  detail::write_contents(contents, reserve, detail::cms_embed(cms, sig, co.tsa));
  return out;
}

}  // namespace

PdfSignResult sign_pdf(Signer& signer, const std::string& input, const std::string& output,
                       const PdfSignOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const Input in = read_input(input);
  // The input's identity from the fstat that read it: one stat of the output, not two.
  if (struct stat out_st{};
      ::stat(output.c_str(), &out_st) == 0 && out_st.st_dev == in.dev && out_st.st_ino == in.ino) {
    throw Error(ErrorCode::BadRequest, "input and output must be different files");
  }

  // A large input is streamed (never held whole): read twice, hashed both times.
  std::vector<char> buf;
  auto stream_file = [&](const std::function<void(const char*, std::size_t)>& fn) {
    if (buf.empty())
      buf.resize(static_cast<std::size_t>(std::min<std::uint64_t>(in.size, 1U << 20U)));
    std::ifstream f(input, std::ios::binary);
    if (!f) throw Error(ErrorCode::DocumentInvalid, "cannot read " + input);
    for (std::uint64_t done = 0; done < in.size;) {
      f.read(buf.data(),
             static_cast<std::streamsize>(std::min<std::uint64_t>(buf.size(), in.size - done)));
      const auto n = static_cast<std::size_t>(f.gcount());
      if (n == 0) throw Error(ErrorCode::DocumentInvalid, input + " changed while signing");
      fn(buf.data(), n);
      done += n;
    }
  };
  const Signed s = sign_signature(signer, in, o, stream_file);
  const Update& u = s.update;

  // The output, written once to a temporary file and renamed into place, so a failure at any
  // point leaves no output behind.
  const std::string tmp = output + ".kyso-tmp";
  try {
    {
      // A transcript is one writev(2) of the original bytes and the update.
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
      if (fd < 0) throw Error(ErrorCode::DocumentInvalid, "cannot write " + tmp);
      bool ok = true;
      auto put = [&](const char* p, std::size_t n) {
        while (ok && n > 0) {
          const ssize_t w = ::write(fd, p, n);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            ok = false;
            break;
          }
          p += w;
          n -= static_cast<std::size_t>(w);
        }
      };
      try {
        if (in.whole) {
          std::array<iovec, 2> parts{{{const_cast<char*>(in.data.data()), in.data.size()},
                                      {const_cast<char*>(u.text.data()), u.text.size()}}};
          std::size_t first = 0;
          while (ok && first < parts.size()) {
            const ssize_t w =
                ::writev(fd, parts.data() + first, static_cast<int>(parts.size() - first));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
              ok = false;
              break;
            }
            // A short write: skip what went out, finish the part it stopped in.
            for (auto done = static_cast<std::size_t>(w); first < parts.size() && done > 0;) {
              const std::size_t n = std::min(done, parts[first].iov_len);
              parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + n;
              parts[first].iov_len -= n;
              done -= n;
              if (parts[first].iov_len == 0) ++first;
            }
            while (first < parts.size() && parts[first].iov_len == 0) ++first;
          }
        } else {
          // The bytes copied are hashed again: if the input changed between the passes, the
          // signature would not match them, and nothing is output.
          EvpMdCtxPtr md(EVP_MD_CTX_new());
          detail::check(
              md && EVP_DigestInit_ex(md.get(), detail::evp_md(hash_of(o.algorithm)), nullptr) == 1,
              "digest");
          stream_file([&](const char* p, std::size_t n) {
            EVP_DigestUpdate(md.get(), p, n);
            put(p, n);
          });
          EVP_DigestUpdate(md.get(), u.text.data(), u.contents_lt);
          EVP_DigestUpdate(md.get(), u.text.data() + u.contents_gt + 1,
                           u.text.size() - u.contents_gt - 1);
          Bytes again(s.digest.size());
          unsigned int dlen = 0;
          EVP_DigestFinal_ex(md.get(), again.data(), &dlen);
          if (again != s.digest)
            throw Error(ErrorCode::DocumentInvalid, input + " changed while signing");
          put(u.text.data(), u.text.size());
        }
      } catch (...) {
        ::close(fd);
        throw;
      }
      if (::close(fd) != 0) ok = false;
      if (!ok) throw Error(ErrorCode::DocumentInvalid, "cannot write " + tmp);
    }
    fs::rename(tmp, output);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return {u.field_name, u.base + u.text.size()};
}

Bytes sign_pdf(Signer& signer, std::span<const std::uint8_t> pdf, const PdfSignOptions& o,
               PdfSignResult* result) {
  Input in;
  in.path = "PDF";
  in.data = {reinterpret_cast<const char*>(pdf.data()), pdf.size()};
  in.size = pdf.size();
  in.whole = true;
  const Signed s = sign_signature(signer, in, o, [](const auto&) {});
  const Update& u = s.update;
  Bytes out;
  out.reserve(pdf.size() + u.text.size());
  out.assign(pdf.begin(), pdf.end());
  append_text(out, u.text);
  if (result != nullptr) *result = {u.field_name, out.size()};
  return out;
}

}  // namespace kyso::formats

namespace kyso::formats::detail {

void write_contents(char* lt, std::size_t reserve, std::span<const std::uint8_t> contents) {
  if (contents.size() > reserve)
    throw Error(ErrorCode::Internal, "signature larger than the space reserved in the PDF");
  // Two hex digits per byte from one table: a CMS is a few kB, written once per signature.
  static constexpr auto kPairs = [] {
    constexpr std::string_view kHex = "0123456789abcdef";
    std::array<char, 512> t{};
    for (std::size_t b = 0; b < 256; ++b) {
      t[2 * b] = kHex[b >> 4U];
      t[2 * b + 1] = kHex[b & 0x0FU];
    }
    return t;
  }();
  char* out = lt + 1;
  for (const std::uint8_t b : contents) {
    std::memcpy(out, &kPairs[2 * std::size_t{b}], 2);
    out += 2;
  }
}

PdfPrepared pdf_prepare(std::span<const std::uint8_t> pdf, const Credential& cred,
                        const PdfSignOptions& o) {
  Input in;
  in.path = "PDF";
  in.data = {reinterpret_cast<const char*>(pdf.data()), pdf.size()};
  in.size = pdf.size();
  in.whole = true;
  PdfPrepared out;
  out.reserve = reserve_for(cred, o);
  const Signed s = prepare_input(
      &cred, in, o, [](const auto&) {}, hash_of(o.algorithm), out.reserve);
  // What is signed does not depend on the timestamp a B-T signature gets at embedding (an
  // unsigned attribute): the template's signed attributes with this messageDigest.
  out.tbs = cms_template_tbs(*cms_template_for(cred, cms_options(o)), s.digest);
  out.content_digest = s.digest;
  out.document.reserve(pdf.size() + s.update.text.size());
  out.document.assign(pdf.begin(), pdf.end());
  append_text(out.document, s.update.text);
  out.contents_at = pdf.size() + s.update.contents_lt;
  out.field_name = s.update.field_name;
  return out;
}

Bytes append_dss(std::span<const std::uint8_t> pdf, const ValidationData& added) {
  const std::string_view view(reinterpret_cast<const char*>(pdf.data()), pdf.size());
  const PdfSource src = inspect_pdf(view, "PDF");
  std::string text;
  const std::uint64_t base = src.size + (src.ends_with_newline ? 0 : 1);
  if (!src.ends_with_newline) text += "\n";
  QPDF q;
  q.setSuppressWarnings(true);
  q.setAttemptRecovery(false);
  try {
    q.processMemoryFile("PDF", view.data(), view.size());
    if (q.isEncrypted()) throw Error(ErrorCode::DocumentEncrypted, "the PDF is encrypted");
    QPDFObjectHandle trailer = q.getTrailer();
    QPDFObjectHandle root = q.getRoot();
    int next = trailer.getKey("/Size").getIntValueAsInt();
    if (next <= 0) throw Error(ErrorCode::DocumentInvalid, "trailer /Size missing");
    std::map<int, std::pair<std::uint64_t, int>> xref;
    auto object = [&](int num, int gen, const std::string& body) {
      xref[num] = {base + text.size(), gen};
      text += std::to_string(num) + " " + std::to_string(gen) + " obj\n" + body + "\nendobj\n";
    };
    QPDFObjectHandle dss = root.getKey("/DSS");
    auto list = [&](const char* key, const std::vector<Bytes>& items) {
      std::string refs = dss.isDictionary() ? array_items(dss.getKey(key)) : "";
      for (const auto& item : items) {
        const int n = next++;
        object(n, 0,
               "<< /Length " + std::to_string(item.size()) + " >>\nstream\n" +
                   std::string(item.begin(), item.end()) + "\nendstream");
        refs += std::to_string(n) + " 0 R ";
      }
      return refs.empty() ? std::string() : std::string(" ") + key + " [" + refs + "]";
    };
    std::string body = (dss.isDictionary() ? open_dict_without(dss, {"/Certs", "/OCSPs", "/CRLs"})
                                           : std::string("<<")) +
                       list("/Certs", added.certs) + list("/OCSPs", added.ocsps) +
                       list("/CRLs", added.crls) + " >>";
    const int dss_num = next++;
    object(dss_num, 0, body);
    const QPDFObjGen root_og = root.getObjGen();
    object(root_og.getObj(), root_og.getGen(),
           open_dict_without(root, {"/DSS"}) + " /DSS " + std::to_string(dss_num) + " 0 R >>");
    finish_revision(text, base, xref, root.unparse(),
                    trailer.hasKey("/Info") ? trailer.getKey("/Info").unparse() : std::string(),
                    trailer.hasKey("/ID") ? trailer.getKey("/ID").unparse() : std::string(), src,
                    next);
  } catch (...) {
    rethrow_as_document_error();
  }
  Bytes out;
  out.reserve(pdf.size() + text.size());
  out.assign(pdf.begin(), pdf.end());
  append_text(out, text);
  return out;
}

Bytes append_document_timestamp(std::span<const std::uint8_t> pdf, const TsaConfig& tsa,
                                std::string* field_name) {
  Input in;
  in.path = "PDF";
  in.data = {reinterpret_cast<const char*>(pdf.data()), pdf.size()};
  in.size = pdf.size();
  in.whole = true;
  // A token with the TSA's chain is a few kB; room for a long chain.
  constexpr std::size_t kReserve = 16384;
  Signed s = prepare_input(
      nullptr, in, PdfSignOptions{}, [](const auto&) {}, tsa.hash, kReserve);
  write_contents(s.update.text.data() + s.update.contents_lt, kReserve,
                 detail::request_timestamp_for_digest(tsa, s.digest).token);
  if (field_name != nullptr) *field_name = s.update.field_name;
  Bytes out;
  out.reserve(pdf.size() + s.update.text.size());
  out.assign(pdf.begin(), pdf.end());
  append_text(out, s.update.text);
  return out;
}

ValidationData read_dss(QPDF& q) {
  ValidationData d;
  QPDFObjectHandle dss = q.getRoot().getKey("/DSS");
  if (!dss.isDictionary()) return d;
  auto read = [&](const char* key, std::vector<Bytes>& into) {
    QPDFObjectHandle a = dss.getKey(key);
    for (auto& item : a.isArray() ? a.getArrayAsVector() : std::vector<QPDFObjectHandle>{}) {
      if (!item.isStream()) continue;
      const auto data = item.getStreamData(qpdf_dl_generalized);
      into.emplace_back(data->getBuffer(), data->getBuffer() + data->getSize());
    }
  };
  read("/Certs", d.certs);
  read("/OCSPs", d.ocsps);
  read("/CRLs", d.crls);
  return d;
}

}  // namespace kyso::formats::detail
