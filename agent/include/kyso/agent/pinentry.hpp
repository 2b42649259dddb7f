#pragma once
/// @file
/// The agent's own dialog: GnuPG's pinentry programs (gnome3, qt, gtk2, curses, tty; the same
/// Assuan protocol on Windows and macOS), started once per dialog. Approval and PIN happen here,
/// never in the web page. PINs go straight from the Assuan data line into a kyso::Secret.

#include <atomic>
#include <chrono>
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
