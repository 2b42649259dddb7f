#pragma once
/// @file
/// Random bytes from OpenSSL's CSPRNG, checked: every nonce, salt, key and token Kyso draws
/// comes from here, and a failing generator is an error, never an ignored result.

#include <cstddef>
#include <cstdint>
#include <span>

#include "kyso/core/bytes.hpp"

namespace kyso {

/// Fills `out` with random bytes (RAND_bytes). Throws Error(Internal) when the generator fails.
void random_bytes(std::span<std::uint8_t> out);
/// `n` random bytes.
Bytes random_bytes(std::size_t n);

}  // namespace kyso
