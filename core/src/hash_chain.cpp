#include "kyso/core/hash_chain.hpp"

#include <openssl/evp.h>

#include <array>
#include <charconv>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"

namespace kyso {

struct ChainHasher::Impl {
  std::unique_ptr<EVP_MD, FnDeleter<EVP_MD_free>> md{EVP_MD_fetch(nullptr, "SHA2-256", nullptr)};
  EvpMdCtxPtr ctx{EVP_MD_CTX_new()};
  std::string buf;
  std::array<char, 64> hex{};

  void put(std::string_view s) {
    std::array<char, 24> num{};
    const auto end = std::to_chars(num.data(), num.data() + num.size(), s.size()).ptr;
    buf.append(num.data(), end);
    buf.push_back(':');
    buf.append(s);
  }
};

ChainHasher::ChainHasher() : impl_(std::make_unique<Impl>()) {
  if (impl_->md == nullptr || impl_->ctx == nullptr) {
    throw Error(ErrorCode::Internal, "hash chain: no SHA-256");
  }
  impl_->buf.reserve(1024);
}

ChainHasher::~ChainHasher() = default;
ChainHasher::ChainHasher(ChainHasher&&) noexcept = default;
ChainHasher& ChainHasher::operator=(ChainHasher&&) noexcept = default;

std::string_view ChainHasher::link(std::string_view prev, std::int64_t seq, std::string_view time,
                                   std::span<const std::string_view> fields) {
  Impl& m = *impl_;
  m.buf.clear();
  m.put(prev);
  std::array<char, 24> num{};
  const auto end = std::to_chars(num.data(), num.data() + num.size(), seq).ptr;
  m.put({num.data(), static_cast<std::size_t>(end - num.data())});
  m.put(time);
  for (const auto f : fields) m.put(f);
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(m.ctx.get(), m.md.get(), nullptr) != 1 ||
      EVP_DigestUpdate(m.ctx.get(), m.buf.data(), m.buf.size()) != 1 ||
      EVP_DigestFinal_ex(m.ctx.get(), md.data(), &len) != 1) {
    throw Error(ErrorCode::Internal, "hash chain: SHA-256 failed");
  }
  static constexpr std::string_view kDigits = "0123456789abcdef";
  char* out = m.hex.data();
  for (const auto b : md) {
    *out++ = kDigits[b >> 4U];
    *out++ = kDigits[b & 0x0fU];
  }
  return {m.hex.data(), m.hex.size()};
}

std::string ChainVerifier::check(const ChainRow& row) {
  ++rows_;
  if (row.seq != expected_seq_) {
    return "row(s) missing before this one (expected sequence " + std::to_string(expected_seq_) +
           ")";
  }
  if (row.prev_hash != prev_) return "does not chain to the previous row";
  if (hasher_.link(row.prev_hash, row.seq, row.time, row.fields) != row.hash) {
    return "content does not match its hash (edited)";
  }
  prev_.assign(row.hash);
  expected_seq_ = row.seq + 1;
  return {};
}

}  // namespace kyso
