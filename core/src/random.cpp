#include "kyso/core/random.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <limits>

#include "kyso/core/error.hpp"

namespace kyso {

void random_bytes(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int: draw very large buffers in pieces.
  constexpr std::size_t kMax = std::numeric_limits<int>::max();
  while (!out.empty()) {
    const std::size_t n = std::min(out.size(), kMax);
    if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
      throw Error(ErrorCode::Internal, "RAND_bytes failed: " + openssl_error());
    }
    out = out.subspan(n);
  }
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  random_bytes(b);
  return b;
}

}  // namespace kyso
