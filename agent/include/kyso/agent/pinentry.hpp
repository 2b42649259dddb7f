#pragma once
/// @file
/// The agent's own dialog: GnuPG's pinentry programs (gnome3, qt, gtk2, curses, tty; the same
/// Assuan protocol on Windows and macOS), started once per dialog. Approval and PIN happen here,
/// never in the web page. PINs go straight from the Assuan data line into a kyso::Secret.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "kyso/core/secret.hpp"

namespace kyso::agent {

/// What one dialog shows. Plain UTF-8 text; the Assuan escaping is done when it is sent.
struct Dialog {
  std::string title;
  std::string description;
  std::string prompt;
  std::string ok;
  std::string cancel;
};

/// Percent-escapes `%`, CR and LF (and other control characters) for an Assuan command line.
std::string assuan_escape(std::string_view text);

/// The longest Assuan line a pinentry accepts (libassuan's ASSUAN_LINELENGTH without the line
/// end): pinentry-tty 1.2.1 exits on a longer one. Counted after percent-escaping.
inline constexpr std::size_t kAssuanMaxLine = 1000;

/// Page-supplied text made fit for a dialog line: Unicode line and paragraph separators
/// (U+2028, U+2029, U+0085) and every other C0/C1 control become a space; bidi controls
/// (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C) and other invisible format characters
/// (zero-width, soft hyphen, BOM, tags, ...) are dropped; bytes that are not UTF-8 become U+FFFD.
/// A page cannot add lines that look like the agent's own nor reverse what follows.
std::string clean_dialog_text(std::string_view text);

/// Code points in UTF-8 `text` (what JSON Schema's maxLength counts).
std::size_t utf8_length(std::string_view text) noexcept;

/// `text` cut at a UTF-8 boundary so that it takes at most `max_escaped` bytes once
/// assuan_escape()d, with "…" at the end when cut.
std::string fit_escaped(std::string_view text, std::size_t max_escaped);

/// The bytes `text` takes once assuan_escape()d.
std::size_t escaped_size(std::string_view text) noexcept;

class Pinentry {
 public:
  /// `program` is a path or a name looked up in PATH; `timeout` bounds each dialog.
  Pinentry(std::string program, std::chrono::seconds timeout);

  /// Asks the user to confirm. Returns false when they pressed Cancel (or closed the dialog).
  /// Throws Error(Timeout) when they did not answer in time, Error(UserCancelled) when `abort`
  /// became true meanwhile, Error(Internal) when pinentry cannot run.
  bool confirm(const Dialog& dialog, const std::atomic<bool>* abort = nullptr) const;

  /// Asks for a PIN (the dialog's OK doubles as the approval). Throws Error(UserCancelled) on
  /// Cancel or abort, Error(Timeout), Error(Internal).
  Secret get_pin(const Dialog& dialog, const std::atomic<bool>* abort = nullptr) const;

  [[nodiscard]] const std::string& program() const noexcept { return program_; }

 private:
  std::string program_;
  std::chrono::seconds timeout_;
};

}  // namespace kyso::agent
