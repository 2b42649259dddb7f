// kyso/core/platform.hpp on Linux (and other POSIX systems).
#include <dlfcn.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"

namespace kyso::platform {

void* load_library(const std::string& path, std::string& why) noexcept {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    why = e != nullptr ? e : "dlopen failed";
  }
  return handle;
}

void* library_symbol(void* library, const char* name) noexcept {
  return ::dlsym(library, name);
}

void unload_library(void* library) noexcept {
  ::dlclose(library);
}

std::filesystem::path executable_path() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe;
}

std::filesystem::path make_private_temp_dir(std::string_view prefix) {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string tmpl = (base / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};  // mode 0700
  return tmpl;
}

std::filesystem::path user_state_dir() {
  if (const char* x = std::getenv("XDG_DATA_HOME"); x != nullptr && *x == '/') {
    return std::filesystem::path(x) / "kyso";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    return std::filesystem::path(home) / ".local" / "share" / "kyso";
  }
  // No HOME (a service started without one): the user's home from the password database, never
  // a shared directory such as /tmp where another user could have planted pairings.json.
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr ||
      pw.pw_dir == nullptr || *pw.pw_dir != '/') {
    throw Error(ErrorCode::ConfigInvalid,
                "HOME is not set and user " + std::to_string(::getuid()) +
                    " has no home directory in the password database; give --state-dir");
  }
  return std::filesystem::path(pw.pw_dir) / ".local" / "share" / "kyso";
}

void prepare_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error(ErrorCode::ConfigInvalid,
                "cannot create the state directory " + dir.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::ConfigInvalid,
                "the state directory " + dir.string() + " is not a directory");
  }
  if (st.st_uid != ::getuid()) {
    throw Error(ErrorCode::ConfigInvalid, "the state directory " + dir.string() +
                                              " belongs to uid " + std::to_string(st.st_uid) +
                                              ", not to this user (" + std::to_string(::getuid()) +
                                              "); give a directory of your own (--state-dir)");
  }
  if ((st.st_mode & 07777) != 0700) {
    // Ours: nobody else should read the audit log nor write pairings.json.
    if (::chmod(dir.c_str(), 0700) != 0 || ::stat(dir.c_str(), &st) != 0 ||
        (st.st_mode & 07777) != 0700) {
      throw Error(ErrorCode::ConfigInvalid,
                  "the state directory " + dir.string() + " must have mode 0700 (chmod 700 it)");
    }
  }
}

bool replace_file_privately(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::string login_name() {
  const long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr && *found->pw_name != '\0') {
    return found->pw_name;
  }
  const char* user = std::getenv("USER");
  return user != nullptr ? user : "";
}

bool readable_by_others(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
}

std::string file_stamp(const char* path) {
  struct stat st {};
  if (path == nullptr || ::stat(path, &st) != 0) return {};
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

void limit_heap_arenas() noexcept {
#if defined(__GLIBC__)
  ::mallopt(M_ARENA_MAX, 2);
#endif
}

void release_free_heap() noexcept {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

bool lock_memory(void* data, std::size_t size) noexcept {
  return ::mlock(data, size) == 0;
}

void unlock_memory(void* data, std::size_t size) noexcept {
  ::munlock(data, size);
}

struct HiddenTerminal::State {
  std::FILE* tty = nullptr;
  std::FILE* in = nullptr;
  std::FILE* out = nullptr;
  termios old{};
  bool changed = false;
};

HiddenTerminal::HiddenTerminal() : state_(std::make_unique<State>()) {
  state_->tty = std::fopen("/dev/tty", "r+");
  state_->in = state_->tty != nullptr ? state_->tty : stdin;
  state_->out = state_->tty != nullptr ? state_->tty : stderr;
}

HiddenTerminal::~HiddenTerminal() {
  if (state_->changed) ::tcsetattr(::fileno(state_->in), TCSAFLUSH, &state_->old);
  if (state_->tty != nullptr) std::fclose(state_->tty);
}

std::FILE* HiddenTerminal::in() const noexcept {
  return state_->in;
}
std::FILE* HiddenTerminal::out() const noexcept {
  return state_->out;
}

void HiddenTerminal::echo_off() noexcept {
  const int fd = ::fileno(state_->in);
  if (::tcgetattr(fd, &state_->old) != 0) return;
  termios noecho = state_->old;
  noecho.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  state_->changed = ::tcsetattr(fd, TCSAFLUSH, &noecho) == 0;
}

namespace {
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

StopRequests::StopRequests(bool ignore_broken_pipe) {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (ignore_broken_pipe) ::signal(SIGPIPE, SIG_IGN);
}

StopRequests::~StopRequests() = default;

std::string StopRequests::wait() {
  const sigset_t set = stop_signals();
  int sig = 0;
  sigwait(&set, &sig);
  return "signal " + std::to_string(sig);
}

bool keep_memory_private() noexcept {
  return ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
}

}  // namespace kyso::platform
