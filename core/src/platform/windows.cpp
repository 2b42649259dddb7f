// kyso/core/platform.hpp on Windows: UTF-8 in and out, UTF-16 at every Win32 call.
#include <windows.h>
// after windows.h
#include <bcrypt.h>
#include <shlobj.h>

#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <cwchar>
#include <vector>

#include "kyso/core/child_process.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/platform_files.hpp"

namespace kyso::platform {
namespace {

std::string narrow(const wchar_t* w, int n = -1) {
  if (w == nullptr) return {};
  const int size = ::WideCharToMultiByte(CP_UTF8, 0, w, n, nullptr, 0, nullptr, nullptr);
  if (size <= 0) return {};
  std::string out(static_cast<std::size_t>(size), '\0');
  ::WideCharToMultiByte(CP_UTF8, 0, w, n, out.data(), size, nullptr, nullptr);
  if (n < 0 && !out.empty()) out.pop_back();  // the terminating NUL
  return out;
}

std::wstring widen(const std::string& s) {
  if (s.empty()) return {};
  const int n = static_cast<int>(s.size());
  const int size = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), n, nullptr, 0);
  if (size <= 0) return {};
  std::wstring out(static_cast<std::size_t>(size), L'\0');
  ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), n, out.data(), size);
  return out;
}

std::string last_error_text(DWORD code) {
  wchar_t* text = nullptr;
  const DWORD n = ::FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::string out = n > 0 ? narrow(text, static_cast<int>(n)) : std::string();
  if (text != nullptr) ::LocalFree(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) {
    out.pop_back();
  }
  return "error " + std::to_string(code) + (out.empty() ? "" : ": " + out);
}

}  // namespace

void* load_library(const std::string& path, std::string& why) noexcept {
  try {
    // The module's own directory is searched for the DLLs it depends on (middleware installs
    // them beside it), not the current directory.
    HMODULE h =
        ::LoadLibraryExW(widen(path).c_str(), nullptr,
                         LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS);
    if (h == nullptr) why = last_error_text(::GetLastError());
    return reinterpret_cast<void*>(h);
  } catch (...) {
    why = "out of memory";
    return nullptr;
  }
}

void* library_symbol(void* library, const char* name) noexcept {
  return reinterpret_cast<void*>(::GetProcAddress(static_cast<HMODULE>(library), name));
}

void unload_library(void* library) noexcept {
  ::FreeLibrary(static_cast<HMODULE>(library));
}

std::filesystem::path executable_path() {
  std::vector<wchar_t> buf(MAX_PATH);
  for (;;) {
    const DWORD n = ::GetModuleFileNameW(nullptr, buf.data(), static_cast<DWORD>(buf.size()));
    if (n == 0) return {};
    if (n < buf.size()) return std::filesystem::path(std::wstring(buf.data(), n));
    buf.resize(buf.size() * 2);
  }
}

std::filesystem::path make_private_temp_dir(std::string_view prefix) {
  // %TEMP% is under the user's profile, whose inherited ACL leaves out other users.
  wchar_t base[MAX_PATH + 1];
  const DWORD n = ::GetTempPathW(MAX_PATH + 1, base);
  if (n == 0 || n > MAX_PATH) return {};
  for (int attempt = 0; attempt < 16; ++attempt) {
    unsigned char r[6];
    if (::BCryptGenRandom(nullptr, r, sizeof r, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return {};
    std::string suffix;
    for (const unsigned char c : r) suffix += "0123456789abcdefghijklmnopqrstuv"[c % 32];
    const std::filesystem::path dir =
        std::filesystem::path(std::wstring(base, n)) / widen(std::string(prefix) + suffix);
    if (::CreateDirectoryW(dir.c_str(), nullptr)) return dir;
    if (::GetLastError() != ERROR_ALREADY_EXISTS) return {};
  }
  return {};
}

std::filesystem::path user_state_dir() {
  wchar_t* dir = nullptr;
  if (::SHGetKnownFolderPath(FOLDERID_LocalAppData, KF_FLAG_CREATE, nullptr, &dir) == S_OK &&
      dir != nullptr) {
    std::filesystem::path p(dir);
    ::CoTaskMemFree(dir);
    return p / L"Kyso";
  }
  if (dir != nullptr) ::CoTaskMemFree(dir);
  if (const wchar_t* env = ::_wgetenv(L"LOCALAPPDATA"); env != nullptr && *env != L'\0') {
    return std::filesystem::path(env) / L"Kyso";
  }
  throw Error(ErrorCode::ConfigInvalid,
              "Windows gives no local application data folder for this user; give --state-dir");
}

void prepare_private_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir, ec)) {
    throw Error(ErrorCode::ConfigInvalid,
                "cannot create the state directory " + narrow(dir.c_str()) + ": " + ec.message());
  }
  // Under %LOCALAPPDATA% the inherited ACL grants the user, SYSTEM and Administrators only.
  // An explicit owner-only DACL (SetNamedSecurityInfoW) for a --state-dir elsewhere is still
  // to come (docs/windows.md).
}

bool replace_file_privately(const std::filesystem::path& path, std::string_view text) {
  const std::wstring target = path.wstring();
  const std::wstring tmp = target + L".tmp";
  // Not shared while it is written; the directory's inherited ACL makes it the user's only.
  HANDLE h = ::CreateFileW(tmp.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return false;
  DWORD written = 0;
  const bool ok = ::WriteFile(h, text.data(), static_cast<DWORD>(text.size()), &written, nullptr) &&
                  written == text.size() && ::FlushFileBuffers(h);
  ::CloseHandle(h);
  if (!ok || !::MoveFileExW(tmp.c_str(), target.c_str(),
                            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    ::DeleteFileW(tmp.c_str());
    return false;
  }
  return true;
}

std::string login_name() {
  wchar_t name[257];
  DWORD size = sizeof name / sizeof name[0];
  if (::GetUserNameW(name, &size) && size > 1) return narrow(name, static_cast<int>(size - 1));
  return {};
}

bool readable_by_others(const std::filesystem::path& /*path*/) {
  // The ACL check (GetNamedSecurityInfoW, an ACE for another SID than ours) is still to come
  // (docs/windows.md); a PIN file under the user's profile inherits an owner-only ACL.
  return false;
}

std::string file_stamp(const char* path) {
  if (path == nullptr) return {};
  WIN32_FILE_ATTRIBUTE_DATA a{};
  if (!::GetFileAttributesExW(widen(path).c_str(), GetFileExInfoStandard, &a)) return {};
  return std::to_string(a.nFileSizeHigh) + ":" + std::to_string(a.nFileSizeLow) + ":" +
         std::to_string(a.ftLastWriteTime.dwHighDateTime) + "." +
         std::to_string(a.ftLastWriteTime.dwLowDateTime) + ":" +
         std::to_string(a.ftCreationTime.dwLowDateTime);
}

void limit_heap_arenas() noexcept {}

void release_free_heap() noexcept {
  ::HeapCompact(::GetProcessHeap(), 0);
}

bool lock_memory(void* data, std::size_t size) noexcept {
  return ::VirtualLock(data, size) != 0;
}

void unlock_memory(void* data, std::size_t size) noexcept {
  ::VirtualUnlock(data, size);
}

struct HiddenTerminal::State {
  std::FILE* tty_in = nullptr;
  std::FILE* tty_out = nullptr;
  HANDLE console = INVALID_HANDLE_VALUE;
  DWORD old = 0;
  bool changed = false;
};

HiddenTerminal::HiddenTerminal() : state_(std::make_unique<State>()) {
  state_->tty_in = std::fopen("CONIN$", "r");
  state_->tty_out = state_->tty_in != nullptr ? std::fopen("CONOUT$", "w") : nullptr;
}

HiddenTerminal::~HiddenTerminal() {
  if (state_->changed) ::SetConsoleMode(state_->console, state_->old);
  if (state_->tty_out != nullptr) std::fclose(state_->tty_out);
  if (state_->tty_in != nullptr) std::fclose(state_->tty_in);
}

std::FILE* HiddenTerminal::in() const noexcept {
  return state_->tty_in != nullptr ? state_->tty_in : stdin;
}
std::FILE* HiddenTerminal::out() const noexcept {
  return state_->tty_out != nullptr ? state_->tty_out : stderr;
}

void HiddenTerminal::echo_off() noexcept {
  const HANDLE h = reinterpret_cast<HANDLE>(::_get_osfhandle(::_fileno(in())));
  if (h == INVALID_HANDLE_VALUE || !::GetConsoleMode(h, &state_->old)) return;
  state_->console = h;
  state_->changed = ::SetConsoleMode(h, state_->old & ~static_cast<DWORD>(ENABLE_ECHO_INPUT)) != 0;
}

namespace {
// The console control handler runs on a thread of its own that Windows starts; it hands the
// request to wait() and, for the console closing, logoff and shutdown (after which Windows ends
// the process as soon as the handler returns), gives main a few seconds to stop cleanly.
HANDLE g_stop_requested = nullptr;
HANDLE g_stopped = nullptr;
std::atomic<DWORD> g_stop_type{0};

BOOL WINAPI on_console_control(DWORD type) {
  g_stop_type.store(type);
  ::SetEvent(g_stop_requested);
  if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT) {
    ::WaitForSingleObject(g_stopped, 5000);
  }
  return TRUE;
}
}  // namespace

StopRequests::StopRequests(bool /*ignore_broken_pipe*/) {
  g_stop_requested = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
  g_stopped = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ::SetConsoleCtrlHandler(on_console_control, TRUE);
}

StopRequests::~StopRequests() {
  ::SetEvent(g_stopped);
  ::SetConsoleCtrlHandler(on_console_control, FALSE);
}

std::string StopRequests::wait() {
  ::WaitForSingleObject(g_stop_requested, INFINITE);
  switch (g_stop_type.load()) {
    case CTRL_C_EVENT:
      return "Ctrl+C";
    case CTRL_BREAK_EVENT:
      return "Ctrl+Break";
    case CTRL_CLOSE_EVENT:
      return "console closed";
    case CTRL_LOGOFF_EVENT:
      return "logoff";
    case CTRL_SHUTDOWN_EVENT:
      return "shutdown";
    default:
      return "console event " + std::to_string(g_stop_type.load());
  }
}

bool keep_memory_private() noexcept {
  // No equivalent yet: a process's DACL denying PROCESS_VM_READ to the user's other processes
  // is still to come (docs/windows.md).
  return true;
}

bool create_private_file(const std::filesystem::path& path) {
  const HANDLE h = ::CreateFileW(path.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                                 FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return false;
  ::CloseHandle(h);
  return true;
}

bool create_private_dir(const std::filesystem::path& path) {
  return ::CreateDirectoryW(path.c_str(), nullptr) != 0;
}

void restrict_to_owner(const std::filesystem::path& /*path*/) noexcept {
  // The inherited ACL of the user's profile (docs/windows.md: explicit ACLs still to come).
}

int open_append_only(const std::filesystem::path& path) noexcept {
  return ::_wopen(path.c_str(), _O_WRONLY | _O_APPEND | _O_CREAT | _O_BINARY | _O_NOINHERIT,
                  _S_IREAD | _S_IWRITE);
}

bool append_text(int fd, std::string_view text) noexcept {
  return fd >= 0 && ::_write(fd, text.data(), static_cast<unsigned>(text.size())) ==
                        static_cast<int>(text.size());
}

void close_file(int fd) noexcept {
  if (fd >= 0) ::_close(fd);
}

bool append_only_flag(const std::filesystem::path& /*path*/) {
  return false;
}

struct ChildProcess::State {
  HANDLE process = nullptr;
  HANDLE in = nullptr;   // its stdin
  HANDLE out = nullptr;  // its stdout
};

ChildProcess::ChildProcess(const std::string& program) : state_(std::make_unique<State>()) {
  SECURITY_ATTRIBUTES inheritable{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  HANDLE child_in = nullptr;
  HANDLE child_out = nullptr;
  HANDLE our_in = nullptr;
  HANDLE our_out = nullptr;
  auto close_all = [&] {
    for (HANDLE h : {child_in, child_out, our_in, our_out}) {
      if (h != nullptr) ::CloseHandle(h);
    }
  };
  if (!::CreatePipe(&child_in, &our_in, &inheritable, 0) ||
      !::CreatePipe(&our_out, &child_out, &inheritable, 0) ||
      !::SetHandleInformation(our_in, HANDLE_FLAG_INHERIT, 0) ||
      !::SetHandleInformation(our_out, HANDLE_FLAG_INHERIT, 0)) {
    close_all();
    throw Error(ErrorCode::Internal, "pipe failed for " + program);
  }
  HANDLE child_err = ::GetStdHandle(STD_ERROR_HANDLE);
  // Only the two pipe ends (and our stderr) are inherited, not every inheritable handle.
  std::vector<HANDLE> handles{child_in, child_out};
  if (child_err != nullptr && child_err != INVALID_HANDLE_VALUE &&
      ::SetHandleInformation(child_err, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
    handles.push_back(child_err);
  } else {
    child_err = nullptr;
  }
  SIZE_T size = 0;
  ::InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
  std::vector<unsigned char> attributes(size);
  auto* list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attributes.data());
  const bool have_list =
      ::InitializeProcThreadAttributeList(list, 1, 0, &size) &&
      ::UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles.data(),
                                  handles.size() * sizeof(HANDLE), nullptr, nullptr);
  STARTUPINFOEXW si{};
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = child_in;
  si.StartupInfo.hStdOutput = child_out;
  si.StartupInfo.hStdError = child_err;
  si.lpAttributeList = have_list ? list : nullptr;
  // The program is looked up in PATH like posix_spawnp does (CreateProcessW's search order);
  // quoted, so a path with spaces is one argument.
  std::wstring command = L"\"" + widen(program) + L"\"";
  PROCESS_INFORMATION pi{};
  const BOOL ok = ::CreateProcessW(nullptr, command.data(), nullptr, nullptr, TRUE,
                                   CREATE_NO_WINDOW | CREATE_UNICODE_ENVIRONMENT |
                                       (have_list ? EXTENDED_STARTUPINFO_PRESENT : 0),
                                   nullptr, nullptr, &si.StartupInfo, &pi);
  const DWORD error = ::GetLastError();
  if (have_list) ::DeleteProcThreadAttributeList(list);
  ::CloseHandle(child_in);
  ::CloseHandle(child_out);
  child_in = child_out = nullptr;
  if (!ok) {
    ::CloseHandle(our_in);
    ::CloseHandle(our_out);
    throw Error(ErrorCode::Internal,
                "cannot start program '" + program + "': " + last_error_text(error));
  }
  ::CloseHandle(pi.hThread);
  state_->process = pi.hProcess;
  state_->in = our_in;
  state_->out = our_out;
}

ChildProcess::~ChildProcess() {
  if (state_->in != nullptr) ::CloseHandle(state_->in);
  if (state_->out != nullptr) ::CloseHandle(state_->out);
  if (state_->process == nullptr) return;
  if (::WaitForSingleObject(state_->process, 100) != WAIT_OBJECT_0) {
    ::TerminateProcess(state_->process, 1);
    ::WaitForSingleObject(state_->process, INFINITE);
  }
  ::CloseHandle(state_->process);
}

bool ChildProcess::write_all(std::string_view data) noexcept {
  std::size_t off = 0;
  while (off < data.size()) {
    DWORD n = 0;
    if (!::WriteFile(state_->in, data.data() + off, static_cast<DWORD>(data.size() - off), &n,
                     nullptr) ||
        n == 0) {
      return false;
    }
    off += n;
  }
  return true;
}

bool ChildProcess::wait_readable(std::chrono::milliseconds timeout) noexcept {
  // Anonymous pipes have no overlapped reads: look every 5 ms.
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    DWORD available = 0;
    if (!::PeekNamedPipe(state_->out, nullptr, 0, nullptr, &available, nullptr)) return true;
    if (available > 0) return true;  // bytes, or (above) its end: read_some() says which
    if (std::chrono::steady_clock::now() >= until) return false;
    ::Sleep(5);
  }
}

long ChildProcess::read_some(char* data, std::size_t size) noexcept {
  DWORD n = 0;
  if (!::ReadFile(state_->out, data, static_cast<DWORD>(size), &n, nullptr)) {
    return ::GetLastError() == ERROR_BROKEN_PIPE ? 0 : -1;
  }
  return static_cast<long>(n);
}

}  // namespace kyso::platform
