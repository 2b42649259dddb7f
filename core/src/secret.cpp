#include "kyso/core/secret.hpp"

#include <openssl/crypto.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <utility>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"

namespace kyso {

Secret::Secret(std::size_t capacity)
    : buf_(std::make_unique<unsigned char[]>(capacity + 1)), capacity_(capacity) {
  // Best effort: keep the PIN out of swap. Failure (RLIMIT_MEMLOCK) is not an error.
  locked_ = platform::lock_memory(buf_.get(), capacity_ + 1);
}

Secret::~Secret() {
  if (!buf_) return;
  OPENSSL_cleanse(buf_.get(), capacity_ + 1);
  if (locked_) platform::unlock_memory(buf_.get(), capacity_ + 1);
}

Secret::Secret(Secret&& other) noexcept
    : buf_(std::move(other.buf_)),
      capacity_(std::exchange(other.capacity_, 0)),
      size_(std::exchange(other.size_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Secret tmp(std::move(other));
    std::swap(buf_, tmp.buf_);
    std::swap(capacity_, tmp.capacity_);
    std::swap(size_, tmp.size_);
    std::swap(locked_, tmp.locked_);
  }
  return *this;
}

void Secret::push_back(char c) {
  if (size_ >= capacity_) throw Error(ErrorCode::PinInvalid, "secret longer than its buffer");
  buf_[size_++] = static_cast<unsigned char>(c);
  buf_[size_] = 0;
}

void Secret::assign(std::string_view s) {
  wipe();
  for (char c : s) push_back(c);
}

void Secret::pop_back() noexcept {
  if (size_ == 0) return;
  buf_[--size_] = 0;
}

void Secret::wipe() noexcept {
  if (buf_) OPENSSL_cleanse(buf_.get(), capacity_ + 1);
  size_ = 0;
}

std::string_view Secret::view() const noexcept {
  return {reinterpret_cast<const char*>(buf_.get()), size_};
}

Secret Secret::from_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorCode::BadRequest, "cannot read PIN file " + path.string());
  }
  if (platform::readable_by_others(path)) {
    throw Error(ErrorCode::BadRequest,
                "PIN file " + path.string() + " is readable by others; chmod 600 it");
  }
  std::FILE* f = std::fopen(path.string().c_str(), "rb");
  if (f == nullptr) throw Error(ErrorCode::BadRequest, "cannot open PIN file " + path.string());
  Secret s;
  for (int c = std::fgetc(f); c != EOF && c != '\n' && c != '\r'; c = std::fgetc(f)) {
    s.push_back(static_cast<char>(c));
  }
  std::fclose(f);
  return s;
}

Secret Secret::from_terminal(std::string_view prompt) {
  // Echo comes back when the terminal goes out of scope, on every path.
  platform::HiddenTerminal term;
  std::FILE* in = term.in();
  std::FILE* out = term.out();
  std::fprintf(out, "%.*s", static_cast<int>(prompt.size()), prompt.data());
  std::fflush(out);
  term.echo_off();
  Secret s;
  bool eof = false;
  for (;;) {
    const int c = std::fgetc(in);
    if (c == EOF) {
      eof = s.empty();
      break;
    }
    if (c == '\n' || c == '\r') break;
    s.push_back(static_cast<char>(c));
  }
  std::fprintf(out, "\n");
  if (eof) throw Error(ErrorCode::UserCancelled, "no PIN entered");
  return s;
}

}  // namespace kyso
