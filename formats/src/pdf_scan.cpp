#include "pdf_scan.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <qpdf/QPDFExc.hh>

#include "kyso/core/error.hpp"

namespace kyso::formats::detail {

namespace {

// `read(offset, length)` returns up to `length` bytes of the file from `offset`.
template <typename Read>
PdfSource inspect(const std::string& name, std::uint64_t size, const Read& read) {
  PdfSource s;
  s.size = size;
  if (read(0, 1024).find("%PDF-") == std::string::npos) {
    throw Error(ErrorCode::DocumentInvalid, name + " is not a PDF file (no %PDF- header)");
  }
  const std::uint64_t tail_len = std::min<std::uint64_t>(s.size, 4096);
  const std::string tail = read(s.size - tail_len, tail_len);
  s.ends_with_newline = !tail.empty() && (tail.back() == '\n' || tail.back() == '\r');
  const auto at = tail.rfind("startxref");
  if (at == std::string::npos || tail.find("%%EOF", at) == std::string::npos) {
    throw Error(ErrorCode::DocumentInvalid, name + ": no startxref / %%EOF at the end");
  }
  try {
    s.startxref = std::stoull(tail.substr(at + 9));
  } catch (const std::exception&) {
    throw Error(ErrorCode::DocumentInvalid, name + ": startxref is not a number");
  }
  if (s.startxref >= s.size)
    throw Error(ErrorCode::DocumentInvalid, name + ": startxref past the end");
  s.xref_stream = read(s.startxref, 16).rfind("xref", 0) != 0;
  return s;
}

}  // namespace

PdfSource inspect_pdf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::DocumentInvalid, "cannot read " + path);
  return inspect(path, std::filesystem::file_size(path),
                 [&](std::uint64_t offset, std::uint64_t length) {
                   in.clear();
                   in.seekg(static_cast<std::streamoff>(offset));
                   std::string out(length, '\0');
                   in.read(out.data(), static_cast<std::streamsize>(length));
                   out.resize(static_cast<std::size_t>(in.gcount()));
                   return out;
                 });
}

PdfSource inspect_pdf(std::string_view data, const std::string& name) {
  return inspect(name, data.size(), [&](std::uint64_t offset, std::uint64_t length) {
    return std::string(
        data.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length)));
  });
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
