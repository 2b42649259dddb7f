#pragma once
/// @file
/// Document transfers of one WebSocket connection (docs/protocol.md, "Uploads and downloads"):
/// a PDF too large for one message arrives in chunks (`upload.begin` / `upload.chunk` /
/// `upload.end`, checked against the announced size and SHA-256) and a signed document too large
/// for the answer leaves the same way (`download.chunk`). Every file lives in a directory of
/// the agent's private state dir (0700, files 0600) that belongs to the connection and is
/// removed with it; nothing is held in memory beyond one chunk.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/bytes.hpp"

namespace kyso::agent {

/// A file in a connection's directory, removed when the last reference goes (a job still
/// signing keeps its input alive after the page let go of it).
class TempFile {
 public:
  explicit TempFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&&) = delete;
  TempFile& operator=(TempFile&&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// A complete file: where, how big, its SHA-256 (hex).
struct StoredFile {
  std::shared_ptr<TempFile> file;
  std::uint64_t size = 0;
  std::string sha256;
};

struct TransferLimits {
  std::uint64_t max_document_bytes = 512ULL * 1024 * 1024;     ///< one upload
  std::uint64_t max_connection_bytes = 1024ULL * 1024 * 1024;  ///< uploads + downloads held
  std::size_t max_open_uploads = 4;
  std::size_t max_chunk_bytes = 512UL * 1024;  ///< decoded; base64 fits a 1 MiB frame
  /// Signed documents up to this size come back inside the answer, larger ones as a download.
  std::size_t inline_result_bytes = 512UL * 1024;
  /// An answer (a batch summary) carries at most this much inline document data in total.
  std::size_t inline_answer_bytes = 8UL * 1024 * 1024;
};

/// Creates a fresh 0600 file in `dir` with a random name; the caller writes it.
std::shared_ptr<TempFile> new_temp_file(const std::filesystem::path& dir, std::string_view suffix);

/// SHA-256 (hex) and size of a file, read in chunks.
StoredFile hash_file(std::shared_ptr<TempFile> file);

/// One connection's uploads and downloads. Not thread-safe: the connection's strand owns it
/// (a chunk is written there: one bounded write to the page cache, like a socket write).
/// Jobs on the worker pool only create files in dir(), which is safe from any thread.
class Transfers {
 public:
  /// Its directory will be `<state_dir>/transfers/<random>` (0700), made on first use.
  explicit Transfers(const std::filesystem::path& state_dir, TransferLimits limits = {});
  /// Removes the directory with whatever is left in it.
  ~Transfers();
  Transfers(const Transfers&) = delete;
  Transfers& operator=(const Transfers&) = delete;
  Transfers(Transfers&&) = delete;
  Transfers& operator=(Transfers&&) = delete;

  /// Leftovers of connections of a process that crashed: removed at start.
  static void remove_stale(const std::filesystem::path& state_dir) noexcept;

  /// The connection's directory (made now if needed).
  const std::filesystem::path& dir();
  [[nodiscard]] const TransferLimits& limits() const noexcept { return limits_; }

  /// Handles upload.begin, upload.chunk, upload.end, upload.abort, download.chunk and
  /// download.end; returns the result. Throws Error for bad requests and limits.
  nlohmann::json handle(const std::string& method, const nlohmann::json& params);

  /// A finished upload for an item. It stays until `upload.abort` or the connection closes
  /// (a job still signing it keeps the file). Throws Error(UploadNotFound).
  [[nodiscard]] StoredFile upload(const std::string& upload_id) const;

  /// Offers a signed document for download; returns its downloadId.
  std::string add_download(StoredFile file);

 private:
  struct Upload;
  struct Download {
    StoredFile file;
  };
  [[nodiscard]] std::uint64_t held_bytes() const;

  std::filesystem::path dir_;
  bool created_ = false;
  TransferLimits limits_;
  std::map<std::string, std::unique_ptr<Upload>> uploads_;
  std::map<std::string, StoredFile> finished_;
  std::map<std::string, Download> downloads_;
};

}  // namespace kyso::agent
