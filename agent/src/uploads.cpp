#include "kyso/agent/uploads.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kyso/core/error.hpp"
#include "kyso/core/platform_files.hpp"
#include "kyso/core/random.hpp"

namespace kyso::agent {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::size_t kHashBuffer = 256UL * 1024;

std::string random_id() {
  return to_hex(random_bytes(12));
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

MdCtx sha256_ctx() {
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::Internal, "SHA-256 init: " + openssl_error());
  }
  return ctx;
}

std::string finish_hex(EVP_MD_CTX* ctx) {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx, md.data(), &n) != 1) {
    throw Error(ErrorCode::Internal, "SHA-256 final: " + openssl_error());
  }
  return to_hex(std::span(md.data(), n));
}

const std::string& string_param(const json& p, const char* key) {
  const auto it = p.find(key);
  if (it == p.end() || !it->is_string()) {
    throw Error(ErrorCode::BadRequest, std::string(key) + " must be a string");
  }
  return it->get_ref<const std::string&>();
}

std::uint64_t uint_param(const json& p, const char* key) {
  const auto it = p.find(key);
  if (it == p.end() || !it->is_number_unsigned()) {
    throw Error(ErrorCode::BadRequest, std::string(key) + " must be a non-negative integer");
  }
  return it->get<std::uint64_t>();
}

std::string lower_hex(std::string s) {
  std::ranges::transform(s, s.begin(), [](char c) {
    return c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return s;
}

}  // namespace

TempFile::~TempFile() {
  std::error_code ec;
  fs::remove(path_, ec);
}

std::shared_ptr<TempFile> new_temp_file(const fs::path& dir, std::string_view suffix) {
  auto path = dir / (random_id() + std::string(suffix));
  if (!platform::create_private_file(path)) {
    throw Error(ErrorCode::Internal, "cannot create " + path.string());
  }
  return std::make_shared<TempFile>(std::move(path));
}

StoredFile hash_file(std::shared_ptr<TempFile> file) {
  std::ifstream in(file->path(), std::ios::binary);
  if (!in) throw Error(ErrorCode::Internal, "cannot read " + file->path().string());
  auto ctx = sha256_ctx();
  std::vector<char> buf(kHashBuffer);
  std::uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    size += n;
  }
  return {.file = std::move(file), .size = size, .sha256 = finish_hex(ctx.get())};
}

struct Transfers::Upload {
  std::shared_ptr<TempFile> file;
  std::ofstream out;
  MdCtx sha = sha256_ctx();
  std::uint64_t size = 0;
  std::uint64_t received = 0;
  std::string expected_sha256;
};

Transfers::Transfers(const fs::path& state_dir, TransferLimits limits)
    : dir_(state_dir / "transfers" / random_id()), limits_(limits) {}

const fs::path& Transfers::dir() {
  if (!created_) {
    fs::create_directories(dir_.parent_path());
    platform::restrict_to_owner(dir_.parent_path());
    if (!platform::create_private_dir(dir_)) {
      throw Error(ErrorCode::Internal, "cannot create " + dir_.string());
    }
    created_ = true;
  }
  return dir_;
}

Transfers::~Transfers() {
  uploads_.clear();
  finished_.clear();
  downloads_.clear();
  if (!created_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void Transfers::remove_stale(const fs::path& state_dir) noexcept {
  std::error_code ec;
  fs::remove_all(state_dir / "transfers", ec);
}

std::uint64_t Transfers::held_bytes() const {
  std::uint64_t n = 0;
  for (const auto& [k, u] : uploads_) n += u->size;
  for (const auto& [k, f] : finished_) n += f.size;
  for (const auto& [k, d] : downloads_) n += d.file.size;
  return n;
}

json Transfers::handle(const std::string& method, const json& p) {
  if (method == "upload.begin") {
    const auto size = uint_param(p, "size");
    const auto sha = lower_hex(string_param(p, "sha256"));
    if (sha.size() != 64 || !std::ranges::all_of(sha, [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        })) {
      throw Error(ErrorCode::BadRequest, "sha256 must be 64 hex digits");
    }
    if (size == 0) throw Error(ErrorCode::BadRequest, "size must be positive");
    if (size > limits_.max_document_bytes) {
      throw Error(ErrorCode::DocumentTooLarge, std::to_string(size) +
                                                   " bytes; a document may have at most " +
                                                   std::to_string(limits_.max_document_bytes));
    }
    if (uploads_.size() >= limits_.max_open_uploads) {
      throw Error(ErrorCode::Busy, "at most " + std::to_string(limits_.max_open_uploads) +
                                       " uploads at once on a connection");
    }
    if (held_bytes() + size > limits_.max_connection_bytes) {
      throw Error(ErrorCode::DocumentTooLarge,
                  "this connection already holds " + std::to_string(held_bytes()) +
                      " bytes; the limit is " + std::to_string(limits_.max_connection_bytes));
    }
    auto u = std::make_unique<Upload>();
    u->file = new_temp_file(dir(), ".part");
    u->out.open(u->file->path(), std::ios::binary | std::ios::trunc);
    if (!u->out) throw Error(ErrorCode::Internal, "cannot write " + u->file->path().string());
    u->size = size;
    u->expected_sha256 = sha;
    const auto id = "u-" + random_id();
    uploads_.emplace(id, std::move(u));
    return {{"uploadId", id}, {"chunkSize", limits_.max_chunk_bytes}};
  }
  if (method == "upload.chunk") {
    const auto& id = string_param(p, "uploadId");
    const auto it = uploads_.find(id);
    if (it == uploads_.end()) throw Error(ErrorCode::UploadNotFound, "no open upload " + id);
    auto& u = *it->second;
    const auto offset = uint_param(p, "offset");
    if (offset != u.received) {
      throw Error(ErrorCode::UploadMismatch, "chunk at offset " + std::to_string(offset) +
                                                 ", expected " + std::to_string(u.received));
    }
    const auto& data = string_param(p, "data");
    if (data.size() > (limits_.max_chunk_bytes + 2) / 3 * 4) {
      throw Error(ErrorCode::BadRequest,
                  "a chunk carries at most " + std::to_string(limits_.max_chunk_bytes) + " bytes");
    }
    Bytes bytes;
    try {
      bytes = from_base64(data);
    } catch (const Error&) {
      throw Error(ErrorCode::BadRequest, "data is not base64");
    }
    if (u.received + bytes.size() > u.size) {
      uploads_.erase(it);
      throw Error(ErrorCode::UploadMismatch, "more bytes than the announced size; upload dropped");
    }
    u.out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
    if (!u.out) {
      uploads_.erase(it);
      throw Error(ErrorCode::Internal, "cannot write the upload (disk full?)");
    }
    EVP_DigestUpdate(u.sha.get(), bytes.data(), bytes.size());
    u.received += bytes.size();
    return {{"uploadId", id}, {"received", u.received}, {"size", u.size}};
  }
  if (method == "upload.end") {
    const auto& id = string_param(p, "uploadId");
    const auto it = uploads_.find(id);
    if (it == uploads_.end()) throw Error(ErrorCode::UploadNotFound, "no open upload " + id);
    auto u = std::move(it->second);
    uploads_.erase(it);
    u->out.close();
    if (u->received != u->size) {
      throw Error(ErrorCode::UploadMismatch, std::to_string(u->received) + " of " +
                                                 std::to_string(u->size) +
                                                 " bytes received; upload dropped");
    }
    const auto got = finish_hex(u->sha.get());
    if (got != u->expected_sha256) {
      throw Error(ErrorCode::UploadMismatch,
                  "SHA-256 of the received bytes is " + got + ", announced " + u->expected_sha256);
    }
    finished_[id] = StoredFile{.file = u->file, .size = u->size, .sha256 = got};
    return {{"uploadId", id}, {"size", u->size}, {"sha256", got}};
  }
  if (method == "upload.abort") {
    const auto& id = string_param(p, "uploadId");
    const bool found = uploads_.erase(id) + finished_.erase(id) > 0;
    return {{"uploadId", id}, {"aborted", found}};
  }
  if (method == "download.chunk") {
    const auto& id = string_param(p, "downloadId");
    const auto it = downloads_.find(id);
    if (it == downloads_.end()) throw Error(ErrorCode::UploadNotFound, "no download " + id);
    const auto& f = it->second.file;
    const auto offset = uint_param(p, "offset");
    if (offset > f.size) throw Error(ErrorCode::BadRequest, "offset beyond the document's end");
    std::uint64_t length = limits_.max_chunk_bytes;
    if (p.contains("length")) length = std::min<std::uint64_t>(uint_param(p, "length"), length);
    length = std::min(length, f.size - offset);
    std::ifstream in(f.file->path(), std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    Bytes buf(length);
    in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(length));
    if (static_cast<std::uint64_t>(in.gcount()) != length) {
      throw Error(ErrorCode::Internal, "cannot read " + f.file->path().string());
    }
    return {{"downloadId", id},
            {"offset", offset},
            {"data", to_base64(buf)},
            {"eof", offset + length == f.size}};
  }
  if (method == "download.end") {
    const auto& id = string_param(p, "downloadId");
    return {{"downloadId", id}, {"released", downloads_.erase(id) > 0}};
  }
  throw Error(ErrorCode::NotSupported, "unknown method '" + method + "'");
}

StoredFile Transfers::upload(const std::string& upload_id) const {
  const auto it = finished_.find(upload_id);
  if (it == finished_.end()) {
    throw Error(ErrorCode::UploadNotFound,
                uploads_.contains(upload_id)
                    ? "upload " + upload_id + " is not finished (upload.end)"
                    : "no finished upload " + upload_id + " on this connection");
  }
  return it->second;
}

std::string Transfers::add_download(StoredFile file) {
  auto id = "d-" + random_id();
  downloads_.emplace(id, Download{std::move(file)});
  return id;
}

}  // namespace kyso::agent
