#include "kyso/agent/pinentry.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "kyso/core/child_process.hpp"
#include "kyso/core/error.hpp"

namespace kyso::agent {
namespace {

// GPG_ERR_CANCELED (99) and GPG_ERR_NOT_CONFIRMED (114), in the low 16 bits of an ERR code.
constexpr unsigned long kGpgErrCanceled = 99;
constexpr unsigned long kGpgErrNotConfirmed = 114;
constexpr unsigned long kGpgErrTimeout = 62;
constexpr std::size_t kMaxLine = 4096;  // Assuan lines are at most 1000 bytes; be lenient

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// One pinentry process and its two pipes (platform::ChildProcess: killed and reaped on every
/// path), and the line buffer its answers are read into, wiped on reuse and at the end.
class Child {
 public:
  Child(const std::string& program, std::chrono::steady_clock::time_point deadline,
        const std::atomic<bool>* abort)
      : process_(start(program)), deadline_(deadline), abort_(abort) {}

  ~Child() { OPENSSL_cleanse(buf_.data(), buf_.size()); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&&) = delete;
  Child& operator=(Child&&) = delete;

  void send(std::string_view line) {
    std::string s(line);
    s.push_back('\n');
    if (!process_->write_all(s)) throw Error(ErrorCode::Internal, "pinentry closed its input");
  }

  /// The next line (without the newline) in the internal buffer, which is wiped on reuse.
  std::string_view read_line() {
    OPENSSL_cleanse(buf_.data(), line_len_);
    // Move any bytes after the previous line to the front.
    if (consumed_ > 0) {
      const std::size_t rest = filled_ - consumed_;
      for (std::size_t i = 0; i < rest; ++i) buf_[i] = buf_[consumed_ + i];
      OPENSSL_cleanse(buf_.data() + rest, filled_ - rest);
      filled_ = rest;
      consumed_ = 0;
    }
    line_len_ = 0;
    for (;;) {
      for (std::size_t i = 0; i < filled_; ++i) {
        if (buf_[i] == '\n') {
          consumed_ = i + 1;
          line_len_ = i + 1;
          return {buf_.data(), i};
        }
      }
      if (filled_ == buf_.size()) throw Error(ErrorCode::Internal, "pinentry line too long");
      wait_readable();
      const long n = process_->read_some(buf_.data() + filled_, buf_.size() - filled_);
      if (n <= 0) throw Error(ErrorCode::Internal, "pinentry exited unexpectedly");
      filled_ += static_cast<std::size_t>(n);
    }
  }

 private:
  static std::unique_ptr<platform::ChildProcess> start(const std::string& program) {
    try {
      return std::make_unique<platform::ChildProcess>(program);
    } catch (const Error&) {
      throw Error(ErrorCode::Internal, "cannot start pinentry program '" + program + "'");
    }
  }

  void wait_readable() {
    for (;;) {
      if (abort_ != nullptr && abort_->load()) {
        throw Error(ErrorCode::UserCancelled, "dialog closed: the request was cancelled");
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline_) throw Error(ErrorCode::Timeout, "no answer in the pinentry dialog");
      // Wake up regularly to notice `abort`.
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now).count();
      if (process_->wait_readable(std::chrono::milliseconds(std::min<long long>(left, 100)))) {
        return;
      }
    }
  }

  std::unique_ptr<platform::ChildProcess> process_;
  std::chrono::steady_clock::time_point deadline_;
  const std::atomic<bool>* abort_;
  std::array<char, kMaxLine> buf_{};
  std::size_t filled_ = 0;
  std::size_t consumed_ = 0;
  std::size_t line_len_ = 0;
};

struct Reply {
  bool ok = false;
  unsigned long err = 0;
  std::string text;
};

/// Reads until OK or ERR. `on_data` gets the still-escaped payload of each D line.
template <typename OnData>
Reply read_reply(Child& c, OnData&& on_data) {
  for (;;) {
    const std::string_view line = c.read_line();
    if (line == "OK" || line.starts_with("OK ")) return {true, 0, {}};
    if (line.starts_with("ERR")) {
      Reply r;
      std::string_view rest = line.substr(3);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      char* end = nullptr;
      const std::string code(rest.substr(0, rest.find(' ')));
      r.err = std::strtoul(code.c_str(), &end, 10);
      r.text = std::string(rest);
      return r;
    }
    if (line.starts_with("D ")) {
      on_data(line.substr(2));
      continue;
    }
    // Status lines (S ...), comments (#) and anything else: ignore.
  }
}

Reply command(Child& c, std::string_view line) {
  c.send(line);
  return read_reply(c, [](std::string_view) {});
}

bool is_cancel(unsigned long err) {
  const unsigned long code = err & 0xFFFFUL;
  return code == kGpgErrCanceled || code == kGpgErrNotConfirmed;
}

void setup(Child& c, const Dialog& d) {
  const Reply hello = read_reply(c, [](std::string_view) {});
  if (!hello.ok) throw Error(ErrorCode::Internal, "pinentry did not greet: " + hello.text);
  // Options a pinentry does not know answer ERR; they are hints, not requirements.
  (void)command(c, "OPTION lc-ctype=C.UTF-8");
  if (const char* tty = std::getenv("GPG_TTY"); tty != nullptr && *tty != '\0') {
    (void)command(c, "OPTION ttyname=" + assuan_escape(tty));
    if (const char* term = std::getenv("TERM"); term != nullptr) {
      (void)command(c, "OPTION ttytype=" + assuan_escape(term));
    }
  }
  const std::pair<const char*, const std::string*> fields[] = {{"SETTITLE ", &d.title},
                                                               {"SETDESC ", &d.description},
                                                               {"SETPROMPT ", &d.prompt},
                                                               {"SETOK ", &d.ok},
                                                               {"SETCANCEL ", &d.cancel}};
  for (const auto& [cmd, value] : fields) {
    if (value->empty()) continue;
    // The dialog's builders keep within the line (the desk lists fewer titles); whatever would
    // not fit is cut here rather than make pinentry exit.
    const std::size_t room = kAssuanMaxLine - std::string_view(cmd).size();
    const Reply r = command(c, std::string(cmd) + assuan_escape(fit_escaped(*value, room)));
    if (!r.ok) throw Error(ErrorCode::Internal, std::string("pinentry refused ") + cmd + r.text);
  }
}

/// The code point at `s[i]` and its length in bytes; {-1, 1} for a byte that does not start a
/// well-formed UTF-8 sequence (overlong forms, surrogates and values past U+10FFFF included).
std::pair<long, std::size_t> decode_utf8(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  std::size_t n = 0;
  long cp = 0;
  long min = 0;
  if ((c & 0xE0U) == 0xC0U) {
    n = 2, cp = c & 0x1FU, min = 0x80;
  } else if ((c & 0xF0U) == 0xE0U) {
    n = 3, cp = c & 0x0FU, min = 0x800;
  } else if ((c & 0xF8U) == 0xF0U) {
    n = 4, cp = c & 0x07U, min = 0x10000;
  } else {
    return {-1, 1};
  }
  if (i + n > s.size()) return {-1, 1};
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0U) != 0x80U) return {-1, 1};
    cp = (cp << 6) | static_cast<long>(b(k) & 0x3FU);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {-1, 1};
  return {cp, n};
}

/// Breaks a line where the page wanted one: C0 and C1 controls, DEL, U+2028, U+2029.
bool is_line_control(long cp) noexcept {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

/// Invisible format characters (Unicode category Cf), the bidi controls among them.
bool is_format(long cp) noexcept {
  return cp == 0xAD || cp == 0x61C || (cp >= 0x600 && cp <= 0x605) || cp == 0x6DD || cp == 0x70F ||
         cp == 0x8E2 || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF ||
         (cp >= 0xFFF9 && cp <= 0xFFFB) || cp == 0x110BD || cp == 0x110CD ||
         (cp >= 0x13430 && cp <= 0x1343F) || (cp >= 0x1BCA0 && cp <= 0x1BCA3) ||
         (cp >= 0x1D173 && cp <= 0x1D17A) || cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F);
}

}  // namespace

std::string clean_dialog_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto [cp, n] = decode_utf8(text, i);
    if (cp < 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
    } else if (is_line_control(cp)) {
      out.push_back(' ');
    } else if (!is_format(cp)) {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::size_t utf8_length(std::string_view text) noexcept {
  std::size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++n;
  }
  return n;
}

std::size_t escaped_size(std::string_view text) noexcept {
  std::size_t n = 0;
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    n += ch == '%' || u < 0x20 || u == 0x7F ? 3 : 1;
  }
  return n;
}

std::string fit_escaped(std::string_view text, std::size_t max_escaped) {
  if (escaped_size(text) <= max_escaped) return std::string(text);
  static constexpr std::string_view kEllipsis = "…";
  if (max_escaped < kEllipsis.size()) return {};
  std::size_t used = kEllipsis.size();
  std::size_t cut = 0;
  while (cut < text.size()) {
    const std::size_t n = decode_utf8(text, cut).second;
    const std::size_t cost = escaped_size(text.substr(cut, n));
    if (used + cost > max_escaped) break;
    used += cost;
    cut += n;
  }
  return std::string(text.substr(0, cut)) + std::string(kEllipsis);
}

std::string assuan_escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '%' || u < 0x20 || u == 0x7F) {
      out.push_back('%');
      out.push_back(kHex[u >> 4U]);
      out.push_back(kHex[u & 0xFU]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

Pinentry::Pinentry(std::string program, std::chrono::seconds timeout)
    : program_(std::move(program)), timeout_(timeout) {}

bool Pinentry::confirm(const Dialog& dialog, const std::atomic<bool>* abort) const {
  Child c(program_, std::chrono::steady_clock::now() + timeout_, abort);
  setup(c, dialog);
  const Reply r = command(c, "CONFIRM");
  try {
    c.send("BYE");
  } catch (const Error&) {
    // The answer is what counts; a pinentry that already left is fine.
  }
  if (r.ok) return true;
  if (is_cancel(r.err)) return false;
  if ((r.err & 0xFFFFUL) == kGpgErrTimeout) throw Error(ErrorCode::Timeout, "pinentry timed out");
  throw Error(ErrorCode::Internal, "pinentry CONFIRM failed: " + r.text);
}

Secret Pinentry::get_pin(const Dialog& dialog, const std::atomic<bool>* abort) const {
  Child c(program_, std::chrono::steady_clock::now() + timeout_, abort);
  setup(c, dialog);
  Secret pin;
  c.send("GETPIN");
  // Decode the D line's percent-escapes straight into the Secret: no other copy of the PIN.
  const Reply r = read_reply(c, [&](std::string_view data) {
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (data[i] == '%' && i + 2 < data.size()) {
        const int hi = hex_value(data[i + 1]);
        const int lo = hex_value(data[i + 2]);
        if (hi >= 0 && lo >= 0) {
          pin.push_back(static_cast<char>(hi * 16 + lo));
          i += 2;
          continue;
        }
      }
      pin.push_back(data[i]);
    }
  });
  try {
    c.send("BYE");
  } catch (const Error&) {
    // See confirm().
  }
  if (!r.ok) {
    pin.wipe();
    if (is_cancel(r.err)) throw Error(ErrorCode::UserCancelled, "cancelled in the PIN dialog");
    if ((r.err & 0xFFFFUL) == kGpgErrTimeout) throw Error(ErrorCode::Timeout, "pinentry timed out");
    throw Error(ErrorCode::Internal, "pinentry GETPIN failed: " + r.text);
  }
  if (pin.empty()) throw Error(ErrorCode::UserCancelled, "no PIN entered");
  return pin;
}

}  // namespace kyso::agent
