#include "kyso/formats/pdf.hpp"

#include <qpdf/QPDF.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "der.hpp"
#include "kyso/formats/cms.hpp"
#include "pdf_scan.hpp"

namespace kyso::formats {
namespace {

std::string ref(const QPDFObjGen& og) {
  return std::to_string(og.getObj()) + " " + std::to_string(og.getGen()) + " R";
}

// "<< /K v ... " of a dictionary minus some keys; the caller adds keys and closes it.
std::string open_dict_without(QPDFObjectHandle dict, const std::set<std::string>& skip) {
  std::string out = "<<";
  for (auto& [key, value] : dict.getDictAsMap()) {
    if (skip.contains(key)) continue;
    out += " " + QPDFObjectHandle::newName(key).unparse() + " " + value.unparse();
  }
  return out;
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

std::string text_string(const std::string& utf8) {
  return QPDFObjectHandle::newUnicodeString(utf8).unparse();
}

struct Update {
  std::string text;             // appended after the original bytes
  std::uint64_t base = 0;       // file offset where `text` starts
  std::size_t contents_lt = 0;  // index in text of '<' of /Contents
  std::size_t contents_gt = 0;  // index in text of '>' of /Contents
  std::string field_name;
};

constexpr std::string_view kByteRangeHolder = "[0 0000000000 0000000000 0000000000]";

Update build_update(const detail::PdfSource& src, const std::string& input, Signer& signer,
                    const PdfSignOptions& o, std::size_t reserve) {
  QPDF q;
  q.setSuppressWarnings(true);
  q.setAttemptRecovery(false);  // a damaged file is refused, not silently rebuilt
  Update u;
  try {
    q.processFile(input.c_str());
    if (q.isEncrypted()) {
      throw Error(ErrorCode::DocumentEncrypted, input + " is encrypted");
    }
    QPDFObjectHandle trailer = q.getTrailer();
    QPDFObjectHandle root = q.getRoot();
    const auto& pages = q.getAllPages();
    if (pages.empty()) throw Error(ErrorCode::DocumentInvalid, input + " has no pages");
    QPDFObjectHandle page = pages.front();
    const int size = trailer.getKey("/Size").getIntValueAsInt();
    if (size <= 0) throw Error(ErrorCode::DocumentInvalid, "trailer /Size missing");

    QPDFObjectHandle acro = root.getKey("/AcroForm");
    QPDFObjectHandle fields =
        acro.isDictionary() ? acro.getKey("/Fields") : QPDFObjectHandle::newNull();
    std::set<std::string> names;
    if (fields.isArray()) {
      for (auto& f : fields.getArrayAsVector()) {
        if (f.isDictionary() && f.getKey("/T").isString())
          names.insert(f.getKey("/T").getUTF8Value());
      }
    }
    u.field_name = o.field_name;
    for (int n = 1; u.field_name.empty() || (o.field_name.empty() && names.contains(u.field_name));
         ++n) {
      u.field_name = "Signature" + std::to_string(n);
    }
    if (names.contains(u.field_name)) {
      throw Error(ErrorCode::BadRequest, "the PDF already has a field named " + u.field_name);
    }

    const QPDFObjGen sig_og(size, 0);
    const QPDFObjGen widget_og(size + 1, 0);
    const int new_size = size + 2;
    u.base = src.size + (src.ends_with_newline ? 0 : 1);
    if (!src.ends_with_newline) u.text += "\n";
    std::map<int, std::pair<std::uint64_t, int>> xref;  // obj -> (offset, gen)
    auto object = [&](const QPDFObjGen& og, const std::string& body) {
      xref[og.getObj()] = {u.base + u.text.size(), og.getGen()};
      u.text += std::to_string(og.getObj()) + " " + std::to_string(og.getGen()) + " obj\n" + body +
                "\nendobj\n";
    };

    // The signature dictionary: /Contents reserved as zeros, /ByteRange filled in below.
    const Credential& cred = signer.credential();
    std::string sig =
        "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange ";
    sig += kByteRangeHolder;
    sig += " /Contents <";
    const std::size_t lt_in_sig = sig.size() - 1;
    sig += std::string(reserve * 2, '0') + ">";
    sig += " /M " + pdf_date(std::chrono::system_clock::now());
    sig += " /Name " + text_string(cred.cert.common_name);
    if (!o.reason.empty()) sig += " /Reason " + text_string(o.reason);
    if (!o.location.empty()) sig += " /Location " + text_string(o.location);
    sig += " >>";
    const std::size_t sig_start = u.text.size() + std::to_string(size).size() + 7;  // "N 0 obj\n"
    object(sig_og, sig);
    u.contents_lt = sig_start + lt_in_sig;
    u.contents_gt = u.contents_lt + 1 + reserve * 2;

    object(widget_og, "<< /Type /Annot /Subtype /Widget /FT /Sig /T " + text_string(u.field_name) +
                          " /V " + ref(sig_og) + " /F 132 /Rect [0 0 0 0] /P " +
                          ref(page.getObjGen()) + " >>");
    object(page.getObjGen(), open_dict_without(page, {"/Annots"}) + " /Annots [" +
                                 array_items(page.getKey("/Annots")) + ref(widget_og) + "] >>");
    const std::string form =
        open_dict_without(acro.isDictionary() ? acro : QPDFObjectHandle::newDictionary(),
                          {"/Fields", "/SigFlags"}) +
        " /Fields [" + array_items(fields) + ref(widget_og) + "] /SigFlags 3 >>";
    if (acro.isIndirect()) {
      object(acro.getObjGen(), form);
    } else {
      object(root.getObjGen(),
             open_dict_without(root, {"/AcroForm"}) + " /AcroForm " + form + " >>");
    }

    std::string trailer_keys = " /Root " + root.unparse();
    if (trailer.hasKey("/Info")) trailer_keys += " /Info " + trailer.getKey("/Info").unparse();
    if (trailer.hasKey("/ID")) trailer_keys += " /ID " + trailer.getKey("/ID").unparse();
    trailer_keys += " /Prev " + std::to_string(src.startxref);

    if (!src.xref_stream) {
      const std::uint64_t xref_at = u.base + u.text.size();
      u.text += "xref\n";
      std::array<char, 40> line{};
      for (const auto& [num, entry] : xref) {
        std::snprintf(line.data(), line.size(), "%d 1\n%010llu %05d n \n", num,
                      static_cast<unsigned long long>(entry.first), entry.second);
        u.text += line.data();
      }
      u.text += "trailer\n<< /Size " + std::to_string(new_size) + trailer_keys +
                " >>\nstartxref\n" + std::to_string(xref_at) + "\n%%EOF\n";
    } else {
      // A cross-reference stream, uncompressed, listing itself too.
      const int xref_num = new_size;
      const std::uint64_t xref_at = u.base + u.text.size();
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
      u.text += std::to_string(xref_num) + " 0 obj\n<< /Type /XRef /Size " +
                std::to_string(xref_num + 1) + " /Index [" + index + "] /W [1 " +
                std::to_string(width) + " 2]" + trailer_keys + " /Length " +
                std::to_string(rows.size()) + " >>\nstream\n" + rows +
                "\nendstream\nendobj\nstartxref\n" + std::to_string(xref_at) + "\n%%EOF\n";
    }
  } catch (...) {
    detail::rethrow_as_document_error();
  }

  // Now every offset is known: fill in the byte ranges, same width as the placeholder.
  const std::uint64_t b1 = u.base + u.contents_lt;
  const std::uint64_t c2 = u.base + u.contents_gt + 1;
  const std::uint64_t end = u.base + u.text.size();
  std::string br =
      "[0 " + std::to_string(b1) + " " + std::to_string(c2) + " " + std::to_string(end - c2);
  if (br.size() + 1 > kByteRangeHolder.size())
    throw Error(ErrorCode::DocumentInvalid, "PDF too large");
  br += std::string(kByteRangeHolder.size() - br.size() - 1, ' ') + "]";
  const auto at = u.text.find(kByteRangeHolder);
  u.text.replace(at, kByteRangeHolder.size(), br);
  return u;
}

}  // namespace

PdfSignResult sign_pdf(Signer& signer, const std::string& input, const std::string& output,
                       const PdfSignOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(input, output, ec)) {
    throw Error(ErrorCode::BadRequest, "input and output must be different files");
  }
  const detail::PdfSource src = detail::inspect_pdf(input);
  const Credential& cred = signer.credential();
  std::size_t reserve = 8192 + cred.cert.der.size();
  for (const auto& c : cred.chain) reserve += c.size();
  if (o.tsa) reserve += 12288;
  const Update u = build_update(src, input, signer, o, reserve);

  // Pass 1: the digest of the byte ranges, streaming the original bytes (never held whole).
  std::vector<char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(src.size, 1U << 20U)));
  auto for_each_chunk = [&](const auto& fn) {
    std::ifstream in(input, std::ios::binary);
    if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + input);
    for (std::uint64_t done = 0; done < src.size;) {
      in.read(buf.data(),
              static_cast<std::streamsize>(std::min<std::uint64_t>(buf.size(), src.size - done)));
      const auto n = static_cast<std::size_t>(in.gcount());
      if (n == 0) throw Error(ErrorCode::DocumentInvalid, input + " changed while signing");
      fn(buf.data(), n);
      done += n;
    }
  };
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  detail::check(
      md && EVP_DigestInit_ex(md.get(), detail::evp_md(hash_of(o.algorithm)), nullptr) == 1,
      "digest");
  for_each_chunk([&](const char* p, std::size_t n) { EVP_DigestUpdate(md.get(), p, n); });
  EVP_DigestUpdate(md.get(), u.text.data(), u.contents_lt);
  EVP_DigestUpdate(md.get(), u.text.data() + u.contents_gt + 1, u.text.size() - u.contents_gt - 1);
  Bytes d(digest_size(hash_of(o.algorithm)));
  unsigned int dlen = 0;
  EVP_DigestFinal_ex(md.get(), d.data(), &dlen);

  CmsOptions co;
  co.algorithm = o.algorithm;
  co.signing_time = false;  // PAdES: the time is the PDF's /M
  co.tsa = o.tsa;
  const Bytes cms = sign_cms_digest(signer, d, co);
  if (cms.size() > reserve)
    throw Error(ErrorCode::Internal, "CMS larger than the space reserved in the PDF");
  std::string text = u.text;
  static constexpr std::string_view kHex = "0123456789abcdef";
  for (std::size_t i = 0; i < cms.size(); ++i) {
    text[u.contents_lt + 1 + 2 * i] = kHex[cms[i] >> 4U];
    text[u.contents_lt + 2 + 2 * i] = kHex[cms[i] & 0x0FU];
  }

  // Pass 2: the output, written once to a temporary file and renamed into place, so a failure
  // at any point leaves no output behind.
  const std::string tmp = output + ".kyso-tmp";
  try {
    {
      // The bytes written are hashed again: if the input changed between the passes, the
      // signature would not match them, and nothing is output.
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error(ErrorCode::DocumentInvalid, "cannot write " + tmp);
      detail::check(EVP_DigestInit_ex(md.get(), detail::evp_md(hash_of(o.algorithm)), nullptr) == 1,
                    "digest");
      for_each_chunk([&](const char* p, std::size_t n) {
        EVP_DigestUpdate(md.get(), p, n);
        out.write(p, static_cast<std::streamsize>(n));
      });
      EVP_DigestUpdate(md.get(), text.data(), u.contents_lt);
      EVP_DigestUpdate(md.get(), text.data() + u.contents_gt + 1, text.size() - u.contents_gt - 1);
      Bytes again(d.size());
      EVP_DigestFinal_ex(md.get(), again.data(), &dlen);
      if (again != d) throw Error(ErrorCode::DocumentInvalid, input + " changed while signing");
      out.write(text.data(), static_cast<std::streamsize>(text.size()));
      out.flush();
      if (!out) throw Error(ErrorCode::DocumentInvalid, "cannot write " + tmp);
    }
    fs::rename(tmp, output);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return {u.field_name, u.base + u.text.size()};
}

}  // namespace kyso::formats
