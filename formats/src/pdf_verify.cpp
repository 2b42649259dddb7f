// PAdES verification: every signature field's /ByteRange streamed through the digest, the CMS
// checked against it, and whether later revisions were appended.

#include <qpdf/QPDF.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "kyso/core/error.hpp"
#include "pdf_scan.hpp"
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
  auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (s.size() > 16 && (s[16] == '+' || s[16] == '-')) {
    int oh = 0, om = 0;
    std::sscanf(s.c_str() + 17, "%2d'%2d", &oh, &om);
    const auto off = std::chrono::hours(oh) + std::chrono::minutes(om);
    t = s[16] == '+' ? t - off : t + off;
  }
  return t;
}

}  // namespace

std::vector<SignatureReport> verify_pdf(const std::string& path, const VerifyOptions& o) {
  QPDF q;
  q.setSuppressWarnings(true);
  q.setAttemptRecovery(false);
  std::vector<SigField> fields;
  try {
    q.processFile(path.c_str());
    if (q.isEncrypted()) throw Error(ErrorCode::DocumentEncrypted, path + " is encrypted");
    QPDFObjectHandle acro = q.getRoot().getKey("/AcroForm");
    if (acro.isDictionary()) collect(acro.getKey("/Fields"), "", fields, 0);
  } catch (...) {
    detail::rethrow_as_document_error();
  }
  const std::uint64_t size = std::filesystem::file_size(path);
  std::vector<SignatureReport> out;
  for (auto& f : fields) {
    SignatureReport bad;
    bad.id = f.name;
    bad.format = "pades";
    std::vector<long long> br;
    Bytes cms;
    std::string m;
    try {
      QPDFObjectHandle range = f.value.getKey("/ByteRange");
      for (auto& v : range.isArray() ? range.getArrayAsVector() : std::vector<QPDFObjectHandle>{}) {
        br.push_back(v.isInteger() ? v.getIntValue() : -1);
      }
      const std::string contents = f.value.getKey("/Contents").isString()
                                       ? f.value.getKey("/Contents").getStringValue()
                                       : "";
      cms.assign(contents.begin(), contents.end());
      if (f.value.getKey("/M").isString()) m = f.value.getKey("/M").getUTF8Value();
    } catch (const std::exception& e) {
      bad.integrity_detail = e.what();
      out.push_back(bad);
      continue;
    }
    if (br.size() != 4 || br[0] != 0 || br[1] < 0 || br[2] < br[1] || br[3] < 0 ||
        static_cast<std::uint64_t>(br[2] + br[3]) > size || cms.empty() ||
        // The gap must be exactly the /Contents string: nothing else may go unsigned.
        static_cast<std::uint64_t>(br[2] - br[1]) !=
            2 * static_cast<std::uint64_t>(cms.size()) + 2) {
      bad.integrity_detail = "malformed /ByteRange or /Contents";
      out.push_back(bad);
      continue;
    }
    const ContentDigest ranges = [&](const EVP_MD* md) {
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
    std::vector<SignatureReport> rs;
    try {
      rs = verify_cms(cms, &ranges, o, "pades");
    } catch (const Error& e) {
      bad.integrity_detail = e.detail();
      out.push_back(bad);
      continue;
    }
    if (rs.empty()) continue;
    SignatureReport r = std::move(rs.front());
    r.id = f.name;
    if (!r.signing_time && !m.empty()) r.signing_time = pdf_date(m);
    r.covers_whole_file = static_cast<std::uint64_t>(br[2] + br[3]) == size;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kyso::formats::detail
