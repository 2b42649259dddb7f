#pragma once
/// @file
/// A buffer for PINs and OTPs. Its capacity is reserved up front so the secret is never
/// reallocated (and copied) while it grows, the pages are locked in RAM where the OS allows,
/// and it is wiped with OPENSSL_cleanse on every path. It cannot be copied, only moved.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

namespace kyso {

class Secret {
 public:
  static constexpr std::size_t kDefaultCapacity = 256;

  explicit Secret(std::size_t capacity = kDefaultCapacity);
  ~Secret();
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;

  /// Appends one byte; throws Error(PinInvalid) when the capacity would be exceeded.
  void push_back(char c);
  /// Replaces the content (wiping the old one first).
  void assign(std::string_view s);
  /// Removes the last byte (for line editors).
  void pop_back() noexcept;
  /// Wipes and empties the buffer.
  void wipe() noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] const unsigned char* data() const noexcept { return buf_.get(); }
  [[nodiscard]] std::string_view view() const noexcept;

  /// Reads a secret from the first line of a file (for scripts: `--pin-file`). The file must
  /// not be readable by group or others.
  static Secret from_file(const std::filesystem::path& path);
  /// Reads a secret from the terminal with echo off. Throws Error(UserCancelled) on EOF.
  static Secret from_terminal(std::string_view prompt);

 private:
  std::unique_ptr<unsigned char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
  bool locked_ = false;
};

}  // namespace kyso
