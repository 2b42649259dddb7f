#pragma once
/// @file
/// The links of a hash-chained, append-only log, whatever stores its rows (SQLite, PostgreSQL):
/// the agent's audit log and the appliance's use it. A row is a sequence number (1, 2, ...), a
/// time and the log's own fields; its hash covers the previous row's hash, so editing, removing
/// or reordering rows behind the store's back breaks the chain at the first such row.
///
/// The canonical form of a row, which the hash is SHA-256 (hex) of: the previous hash, the
/// sequence number in decimal, the time and each field, each written as "<byte length>:<bytes>"
/// (so no two different rows serialize alike). The first row chains to kChainGenesis, so
/// removing the first rows is detected too.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace kyso {

/// The "previous hash" of the first row: 64 zeros.
inline constexpr std::string_view kChainGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Computes link hashes. Reuses its buffers (a batch hashes thousands of rows); one per thread.
class ChainHasher {
 public:
  ChainHasher();
  ~ChainHasher();
  ChainHasher(const ChainHasher&) = delete;
  ChainHasher& operator=(const ChainHasher&) = delete;
  ChainHasher(ChainHasher&&) noexcept;
  ChainHasher& operator=(ChainHasher&&) noexcept;

  /// The hash (64 hex digits) of the row after `prev`; valid until the next call.
  std::string_view link(std::string_view prev, std::int64_t seq, std::string_view time,
                        std::span<const std::string_view> fields);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One stored row as a verifier reads it back.
struct ChainRow {
  std::int64_t seq = 0;
  std::string_view time;
  std::span<const std::string_view> fields;
  std::string_view prev_hash;  ///< as stored
  std::string_view hash;       ///< as stored
};

/// Walks a chain from its first row: feed every stored row in sequence order.
class ChainVerifier {
 public:
  /// Why `row` breaks the chain (a row missing before it, not chained to the previous row, or
  /// its content edited), or an empty string when it holds.
  std::string check(const ChainRow& row);
  /// Rows checked so far.
  [[nodiscard]] std::int64_t rows() const noexcept { return rows_; }

 private:
  ChainHasher hasher_;
  std::string prev_{kChainGenesis};
  std::int64_t expected_seq_ = 1;
  std::int64_t rows_ = 0;
};

}  // namespace kyso
