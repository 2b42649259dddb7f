#pragma once
// The audit chain's link and the time encoding shared by the state backends.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "kyso/core/bytes.hpp"

namespace kyso::remote {

inline constexpr std::string_view kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 hex over the previous row's hash and this row's fields, each length-prefixed so no
/// two different rows serialise alike.
inline std::string audit_link_hash(std::string_view prev, std::int64_t seq, std::string_view time,
                                   std::string_view user, std::string_view event,
                                   std::string_view detail) {
  std::string buf;
  const std::string seq_text = std::to_string(seq);
  for (std::string_view f : {prev, std::string_view(seq_text), time, user, event, detail}) {
    buf += std::to_string(f.size());
    buf += ':';
    buf += f;
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
  return to_hex(sha256(std::span(p, buf.size())));
}

// Times are Unix milliseconds: whole seconds would cut up to a second off short lifetimes.
inline std::int64_t to_unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::chrono::system_clock::time_point from_unix_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds{ms})};
}

}  // namespace kyso::remote
