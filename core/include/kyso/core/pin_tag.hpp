#pragma once
/// @file
/// Remembering which PIN was typed without keeping it: an HMAC-SHA-256 tag of the PIN under a
/// key drawn when the tagger is made and wiped when it goes. The token layer uses it to refuse a
/// PIN the token already rejected (a second try would burn one), the appliance to compare a PIN
/// with the one its HSM accepted.

#include <array>

#include "kyso/core/secret.hpp"

namespace kyso {

class PinTagger {
 public:
  using Tag = std::array<unsigned char, 32>;

  PinTagger();
  ~PinTagger();
  PinTagger(const PinTagger&) = delete;
  PinTagger& operator=(const PinTagger&) = delete;
  PinTagger(PinTagger&&) = delete;
  PinTagger& operator=(PinTagger&&) = delete;

  /// The tag of `pin` under this tagger's key. Throws Error(Internal) when HMAC fails.
  [[nodiscard]] Tag tag(const Secret& pin) const;
  /// Whether two tags are equal, in constant time.
  [[nodiscard]] static bool same(const Tag& a, const Tag& b) noexcept;

 private:
  std::array<unsigned char, 32> key_{};
};

}  // namespace kyso
