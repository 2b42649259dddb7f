// kyso/core/platform.hpp on Linux (and other POSIX systems).
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/fs.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kyso/core/child_process.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/platform_files.hpp"

extern char** environ;

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

bool create_private_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool create_private_dir(const std::filesystem::path& path) {
  return ::mkdir(path.c_str(), 0700) == 0;
}

void restrict_to_owner(const std::filesystem::path& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  ::chmod(path.c_str(), S_ISDIR(st.st_mode) ? 0700 : 0600);
}

int open_append_only(const std::filesystem::path& path) noexcept {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

bool append_text(int fd, std::string_view text) noexcept {
  return fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

void close_file(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

bool append_only_flag(const std::filesystem::path& path) {
  int flags = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const bool append_only =
      fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_APPEND_FL) != 0;
  if (fd >= 0) ::close(fd);
  return append_only;
}

struct ChildProcess::State {
  pid_t pid = -1;
  int in = -1;   // its stdin
  int out = -1;  // its stdout
};

ChildProcess::ChildProcess(const std::string& program) : state_(std::make_unique<State>()) {
  std::array<int, 2> to_child{-1, -1};
  std::array<int, 2> from_child{-1, -1};
  auto close_all = [&] {
    for (const int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (::pipe2(to_child.data(), O_CLOEXEC) != 0 || ::pipe2(from_child.data(), O_CLOEXEC) != 0) {
    close_all();
    throw Error(ErrorCode::Internal, "pipe failed for " + program);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
  // Nothing else of ours (listening sockets, the token module's files) reaches the program.
  posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
  std::vector<char*> argv{const_cast<char*>(program.c_str()), nullptr};
  const int rc = ::posix_spawnp(&state_->pid, program.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(to_child[0]);
  ::close(from_child[1]);
  state_->in = to_child[1];
  state_->out = from_child[0];
  if (rc != 0) {
    state_->pid = -1;
    ::close(state_->in);
    ::close(state_->out);
    throw Error(ErrorCode::Internal, "cannot start program '" + program + "'");
  }
}

ChildProcess::~ChildProcess() {
  if (state_->in >= 0) ::close(state_->in);
  if (state_->out >= 0) ::close(state_->out);
  const pid_t pid = state_->pid;
  if (pid <= 0) return;
  int status = 0;
  // Give a well-behaved program up to 100 ms to exit, then make sure. For pinentry this runs
  // between the user's answer and the token's login: woken the moment the child exits (a
  // pidfd; glibc 2.36 declares pidfd_open without C linkage) instead of on a 5 ms sleep,
  // which could add up to 5 ms to a single sign.
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    if (const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); pidfd >= 0) {
      pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
      (void)::poll(&p, 1, 100);
      ::close(pidfd);
    } else {
      for (int i = 0; i < 20 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) ::usleep(5000);
    }
    if (::waitpid(pid, &status, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
}

bool ChildProcess::write_all(std::string_view data) noexcept {
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(state_->in, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool ChildProcess::wait_readable(std::chrono::milliseconds timeout) noexcept {
  pollfd p{state_->out, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r < 0 && errno == EINTR) return false;
  return r != 0;  // readable, or an error that read_some() reports
}

long ChildProcess::read_some(char* data, std::size_t size) noexcept {
  for (;;) {
    const ssize_t n = ::read(state_->out, data, size);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

}  // namespace kyso::platform
