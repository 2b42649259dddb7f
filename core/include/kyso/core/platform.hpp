#pragma once
/// @file
/// What differs between Linux and Windows, behind one small interface each (issue 18). The rest
/// of the code calls these and never the OS: core/src/platform/posix.cpp implements them with
/// POSIX calls, core/src/platform/windows.cpp with Win32 ones, and CMake compiles one of the
/// two. Text is UTF-8 on both sides of this interface; the Windows side converts to UTF-16 at
/// the API it calls.

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace kyso::platform {

// ---- Shared libraries (PKCS#11 modules, the documents module) ----------------------------

/// Loads the shared library at `path` (UTF-8; dlopen(RTLD_NOW|RTLD_LOCAL) or LoadLibraryW).
/// Returns nullptr and sets `why` to the loader's reason when it cannot.
void* load_library(const std::string& path, std::string& why) noexcept;
/// The address of the exported symbol `name`, or nullptr.
void* library_symbol(void* library, const char* name) noexcept;
/// Unloads a library loaded by load_library (only when nothing of it was used yet: modules
/// register atexit handlers and threads, and stay mapped once initialized).
void unload_library(void* library) noexcept;
/// The running program's own file (/proc/self/exe, GetModuleFileNameW); empty when unknown.
std::filesystem::path executable_path();

// ---- Paths from and to UTF-8 text ----------------------------------------------------------

/// The path a UTF-8 string names. Use it wherever text (configuration, command line, JSON)
/// becomes a path: std::filesystem::path(std::string) converts with the C library's locale on
/// Windows (MinGW's libstdc++), not as UTF-8, and "Thầy cô" becomes a path that does not exist.
inline std::filesystem::path utf8_path(std::string_view text) {
  return std::filesystem::path(
      std::u8string_view(reinterpret_cast<const char8_t*>(text.data()), text.size()));
}
/// A path as UTF-8 text (the inverse of utf8_path; path::string() is the locale's on Windows).
inline std::string path_utf8(const std::filesystem::path& path) {
  const std::u8string s = path.u8string();
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}
/// A new directory only this user can use, in the system's temporary directory, named
/// `prefix` and a random suffix (mkdtemp; GetTempPathW and CreateDirectoryW). Empty when none
/// could be made.
std::filesystem::path make_private_temp_dir(std::string_view prefix);

// ---- The user's state directory ------------------------------------------------------------

/// Where Kyso keeps this user's state (pairings, audit log): $XDG_DATA_HOME/kyso, else
/// ~/.local/share/kyso with HOME or the password database's home (POSIX);
/// %LOCALAPPDATA%\Kyso (Windows). Throws Error(ConfigInvalid) when the OS cannot say.
std::filesystem::path user_state_dir();
/// Creates `dir` if missing and checks that only this user can use it: owned by this uid and
/// mode 0700, tightened if it is ours but looser (POSIX); on Windows a directory under the
/// user's profile, whose inherited ACL already leaves out other users. Throws
/// Error(ConfigInvalid) saying what is wrong.
void prepare_private_dir(const std::filesystem::path& dir);
/// Replaces `path` with `text` all at once: written beside it (owner-only: 0600), flushed to
/// disk, then renamed over it, so a crash never leaves half a file. False when it could not.
bool replace_file_privately(const std::filesystem::path& path, std::string_view text);
/// The login name of the user running this process (`%u` in configured paths): the password
/// database's, else $USER (POSIX); GetUserNameW (Windows). "" when unknown.
std::string login_name();
/// True when `path` can be read by other users than its owner (a PIN file must not be).
bool readable_by_others(const std::filesystem::path& path);
/// A string that changes when the file at `path` is replaced or modified; "" when missing.
std::string file_stamp(const char* path);

// ---- Memory and terminal for secrets -------------------------------------------------------

/// Keeps [data, data+size) out of swap where the OS allows (mlock, VirtualLock).
bool lock_memory(void* data, std::size_t size) noexcept;
void unlock_memory(void* data, std::size_t size) noexcept;

/// For a long-running service, first thing in main: at most two allocator arenas. glibc makes
/// up to 8 per core, and each keeps what its threads freed, fragmented, for good; with two,
/// what one thread frees is what the next one reuses (issue 17: the agent's RSS in bench/soak).
/// A no-op elsewhere.
void limit_heap_arenas() noexcept;

/// Gives the allocator's free memory back to the OS (issue 17). glibc keeps what threads freed
/// in their arenas, fragmented, so a service that ran a burst of documents and batches keeps
/// that high-water mark for good unless asked (malloc_trim); Windows' HeapCompact on the
/// process heap. For long-running services when they are idle: it walks the free lists.
void release_free_heap() noexcept;

/// The user's terminal for a typed PIN: /dev/tty (CONIN$/CONOUT$ on Windows) with echo off
/// while it lives, or stdin/stderr when there is none. Echo comes back in the destructor.
class HiddenTerminal {
 public:
  HiddenTerminal();
  ~HiddenTerminal();
  HiddenTerminal(const HiddenTerminal&) = delete;
  HiddenTerminal& operator=(const HiddenTerminal&) = delete;
  HiddenTerminal(HiddenTerminal&&) = delete;
  HiddenTerminal& operator=(HiddenTerminal&&) = delete;

  [[nodiscard]] std::FILE* in() const noexcept;
  [[nodiscard]] std::FILE* out() const noexcept;
  /// Turns echo off (after the prompt was written); a no-op when input is not a terminal.
  void echo_off() noexcept;

 private:
  struct State;  // each implementation's own
  std::unique_ptr<State> state_;
};

// ---- Stopping a program that serves until asked ----------------------------------------------

/// The OS's requests to stop: SIGINT and SIGTERM (POSIX); Ctrl+C, Ctrl+Break, the console
/// closing, logoff and shutdown (Windows, SetConsoleCtrlHandler). Make one in main before any
/// thread starts: on POSIX it blocks both signals so that every thread inherits the mask and
/// only wait() takes them. One per process.
class StopRequests {
 public:
  /// `ignore_broken_pipe`: a write to a closed socket or pipe fails instead of killing the
  /// process (SIGPIPE ignored; Windows has no such signal).
  explicit StopRequests(bool ignore_broken_pipe = false);
  ~StopRequests();
  StopRequests(const StopRequests&) = delete;
  StopRequests& operator=(const StopRequests&) = delete;
  StopRequests(StopRequests&&) = delete;
  StopRequests& operator=(StopRequests&&) = delete;

  /// Blocks until the OS asks the program to stop; says what asked ("signal 15", "Ctrl+C").
  std::string wait();
};

/// Keeps other processes of the user from reading this one's memory where the OS allows, and
/// out of core dumps (PINs pass through it): prctl(PR_SET_DUMPABLE, 0) on Linux. False when it
/// failed. Windows: nothing yet (docs/windows.md).
bool keep_memory_private() noexcept;

}  // namespace kyso::platform
