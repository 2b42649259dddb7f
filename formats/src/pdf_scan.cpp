#include "pdf_scan.hpp"

#include <filesystem>
#include <fstream>
#include <vector>

#include <qpdf/QPDFExc.hh>

#include "kyso/core/error.hpp"

namespace kyso::formats::detail {

PdfSource inspect_pdf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  PdfSource s;
  s.size = std::filesystem::file_size(path);
  std::string head(1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  if (head.find("%PDF-") == std::string::npos) {
    throw Error(ErrorCode::DocumentInvalid, path + " is not a PDF file (no %PDF- header)");
  }
  in.clear();
  const std::uint64_t tail_len = std::min<std::uint64_t>(s.size, 4096);
  in.seekg(static_cast<std::streamoff>(s.size - tail_len));
  std::string tail(tail_len, '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail_len));
  s.ends_with_newline = !tail.empty() && (tail.back() == '\n' || tail.back() == '\r');
  const auto at = tail.rfind("startxref");
  if (at == std::string::npos || tail.find("%%EOF", at) == std::string::npos) {
    throw Error(ErrorCode::DocumentInvalid, path + ": no startxref / %%EOF at the end");
  }
  try {
    s.startxref = std::stoull(tail.substr(at + 9));
  } catch (const std::exception&) {
    throw Error(ErrorCode::DocumentInvalid, path + ": startxref is not a number");
  }
  if (s.startxref >= s.size)
    throw Error(ErrorCode::DocumentInvalid, path + ": startxref past the end");
  in.clear();
  in.seekg(static_cast<std::streamoff>(s.startxref));
  std::string at_xref(16, '\0');
  in.read(at_xref.data(), static_cast<std::streamsize>(at_xref.size()));
  s.xref_stream = at_xref.rfind("xref", 0) != 0;
  return s;
}

void rethrow_as_document_error() {
  try {
    throw;
  } catch (const QPDFExc& e) {
    if (e.getErrorCode() == qpdf_e_password) throw Error(ErrorCode::DocumentEncrypted, e.what());
    throw Error(ErrorCode::DocumentInvalid, e.what());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::DocumentInvalid, e.what());
  }
}

}  // namespace kyso::formats::detail
