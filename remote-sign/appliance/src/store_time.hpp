#pragma once
// The time encoding shared by the state backends (the audit chain's links are core's
// hash_chain.hpp).

#include <chrono>
#include <cstdint>

namespace kyso::appliance {

// Times are Unix milliseconds: whole seconds would cut up to a second off short lifetimes.
inline std::int64_t to_unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::chrono::system_clock::time_point from_unix_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds{ms})};
}

}  // namespace kyso::appliance
