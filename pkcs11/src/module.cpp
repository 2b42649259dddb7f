#include "module.hpp"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>

#include "kyso/core/platform.hpp"
#include "registry.hpp"

namespace kyso::pkcs11::detail {
namespace {

// What the process knows about one module path: the instance in use, and the loaded image to
// use for the next instance (the file itself, or the private copy loaded after a quarantine).
// Images are never unloaded (see ~Module), so the handle stays valid for the process's life.
struct Entry {
  std::weak_ptr<Module> live;
  void* handle = nullptr;
  CK_FUNCTION_LIST* functions = nullptr;
  /// Set by the instance on the image when a call into it did not return: the image is stuck
  /// for good, and the next instance needs a fresh copy.
  std::shared_ptr<std::atomic<bool>> stuck = std::make_shared<std::atomic<bool>>(false);
  int reloads = 0;
};

std::mutex g_registry_mutex;
std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> r;
  return r;
}

std::chrono::milliseconds env_timeout() {
  const char* v = std::getenv("KYSO_PKCS11_TIMEOUT_MS");
  if (v == nullptr || *v == '\0') return std::chrono::milliseconds{0};
  char* end = nullptr;
  const long long ms = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || ms <= 0) return std::chrono::milliseconds{0};
  return std::chrono::milliseconds{ms};
}

// Loads `file` (UTF-8) and finds its function list; throws ModuleLoadFailed.
std::pair<void*, CK_FUNCTION_LIST*> open_image(const std::string& file, const std::string& path) {
  std::string why;
  void* handle = platform::load_library(file, why);
  if (handle == nullptr) throw Error(ErrorCode::ModuleLoadFailed, path + ": " + why);
  auto* get_list =
      reinterpret_cast<CK_C_GetFunctionList>(platform::library_symbol(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* functions = nullptr;
  if (get_list == nullptr || get_list(&functions) != CKR_OK || functions == nullptr) {
    platform::unload_library(handle);
    throw Error(ErrorCode::ModuleLoadFailed,
                path + ": not a PKCS#11 module (no C_GetFunctionList)");
  }
  return {handle, functions};
}

// A private copy of the module's file, loaded: the dynamic loader keys loaded objects by file
// (device and inode; Windows' loader by path), so the copy is a new instance with its own
// globals, mutexes and card contexts, untouched by the thread stuck in the old one. The copy is
// removed once mapped (on Windows a mapped DLL cannot be deleted: it stays in %TEMP%).
// Its dependencies (libopensc, libpcsclite) stay shared: what OpenSC 0.23 blocks on after a
// pulled card is the card's lock, which lives in the module's own context.
std::pair<void*, CK_FUNCTION_LIST*> open_private_copy(const std::string& canonical,
                                                      const std::string& path, int n) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = platform::make_private_temp_dir("kyso-pkcs11-");
  if (dir.empty()) {
    throw Error(ErrorCode::ModuleLoadFailed,
                path + ": no temporary directory for a fresh copy of the module");
  }
  const fs::path source = platform::utf8_path(canonical);
  const fs::path copy = dir / (fs::path(std::to_string(n) + "-") += source.filename());
  fs::copy_file(source, copy, ec);
  if (ec) {
    fs::remove_all(dir, ec);
    throw Error(ErrorCode::ModuleLoadFailed, path + ": copying the module: " + ec.message());
  }
  try {
    auto image = open_image(platform::path_utf8(copy), path);
    fs::remove_all(dir, ec);
    return image;
  } catch (...) {
    fs::remove_all(dir, ec);
    throw;
  }
}

}  // namespace

std::string fixed_string(const unsigned char* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  const auto end = s.find_last_not_of(" \0", std::string::npos, 2);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

std::string rv_name(CK_RV rv) {
  if (rv == kRvUnresponsive) return "no answer in time (Kyso's watchdog)";
  const char* text = registry_rv_text(rv);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%08lx", static_cast<unsigned long>(rv));
  return std::string(hex) + (text != nullptr ? std::string(" (") + text + ")" : "");
}

std::shared_ptr<Module> Module::load(const std::string& path, const CallTimeouts& timeouts) {
  std::error_code ec;
  const auto canonical = std::filesystem::canonical(platform::utf8_path(path), ec);
  if (ec) throw Error(ErrorCode::ModuleLoadFailed, path + ": " + ec.message());
  const std::string key = platform::path_utf8(canonical);

  const std::lock_guard lock(g_registry_mutex);
  Entry& e = registry()[key];
  if (auto existing = e.live.lock()) {
    if (!existing->quarantined()) {
      // A caller without timeouts of its own (Admin) leaves the Library's in place.
      const bool own =
          timeouts.quick.count() > 0 || timeouts.sign.count() > 0 || timeouts.human.count() > 0;
      if (own) existing->set_timeouts(timeouts);
      return existing;
    }
  }
  if (e.handle != nullptr && e.stuck->load()) {
    // The last instance was quarantined: its image is stuck for good; load a fresh copy.
    if (e.reloads >= kMaxReloads) {
      throw Error(ErrorCode::TokenUnresponsive, path + ": stopped answering " +
                                                    std::to_string(e.reloads + 1) +
                                                    " times; not loaded again until Kyso restarts");
    }
    auto image = open_private_copy(key, path, e.reloads + 1);
    ++e.reloads;
    e.handle = image.first;
    e.functions = image.second;
    e.stuck = std::make_shared<std::atomic<bool>>(false);
  } else if (e.handle == nullptr) {
    auto image = open_image(key, path);
    e.handle = image.first;
    e.functions = image.second;
  }
  std::shared_ptr<Module> m(new Module(path, e.handle, e.functions, e.reloads, e.stuck, timeouts));
  e.live = m;
  return m;
}

Module::Module(std::string path, void* handle, CK_FUNCTION_LIST* functions, int generation,
               std::shared_ptr<std::atomic<bool>> stuck, const CallTimeouts& timeouts)
    : path_(std::move(path)),
      handle_(handle),
      functions_(functions),
      generation_(generation),
      quarantined_(std::move(stuck)) {
  set_timeouts(timeouts);
  // OS locking: Kyso signs from several threads, each on its own session.
  auto args = std::make_shared<CK_C_INITIALIZE_ARGS>();
  args->flags = CKF_OS_LOCKING_OK;
  const CK_RV rv = invoke_as<&CK_FUNCTION_LIST::C_Initialize>(CallKind::Quick, args, args.get());
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    finalize_ = false;  // someone else in this process owns it; leave it to them
  } else if (rv != CKR_OK) {
    pool_->shutdown();
    throw Error(rv == kRvUnresponsive ? ErrorCode::TokenUnresponsive : ErrorCode::ModuleLoadFailed,
                path_ + ": C_Initialize returned " + rv_name(rv));
  }
  auto info = std::make_shared<CK_INFO>();
  if (invoke_as<&CK_FUNCTION_LIST::C_GetInfo>(CallKind::Quick, info, info.get()) == CKR_OK) {
    info_ = *info;
  }
}

void Module::set_timeouts(const CallTimeouts& t) noexcept {
  using std::chrono::milliseconds;
  const milliseconds env = env_timeout();
  auto pick = [&](milliseconds configured, milliseconds from_env, milliseconds fallback) {
    if (configured.count() > 0) return configured.count();
    if (from_env.count() > 0) return from_env.count();
    return fallback.count();
  };
  quick_ms_ = pick(t.quick, env, std::chrono::seconds(30));
  sign_ms_ = pick(t.sign, env, std::chrono::seconds(60));
  human_ms_ = pick(t.human, milliseconds{0}, std::chrono::minutes(10));
}

CK_RV Module::run(CallKind kind, std::function<CK_RV()> fn,
                  std::shared_ptr<StepClock> steps) const noexcept {
  if (quarantined_->load()) return kRvUnresponsive;
  const std::int64_t ms = kind == CallKind::Sign    ? sign_ms_.load()
                          : kind == CallKind::Human ? human_ms_.load()
                                                    : quick_ms_.load();
  try {
    if (auto rv = pool_->run(std::move(fn), std::chrono::milliseconds{ms}, std::move(steps))) {
      return *rv;
    }
  } catch (const std::system_error&) {
    return CKR_HOST_MEMORY;  // no thread could be started for the call
  }
  quarantined_->store(true);
  return kRvUnresponsive;
}

void Module::reinitialize() {
  if (!finalize_) return;  // another owner in this process initialized it: not ours to reset
  (void)invoke<&CK_FUNCTION_LIST::C_Finalize>(nullptr);
  auto args = std::make_shared<CK_C_INITIALIZE_ARGS>();
  args->flags = CKF_OS_LOCKING_OK;
  const CK_RV rv = invoke_as<&CK_FUNCTION_LIST::C_Initialize>(CallKind::Quick, args, args.get());
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    throw Error(rv == kRvUnresponsive ? ErrorCode::TokenUnresponsive : ErrorCode::ModuleLoadFailed,
                path_ + ": C_Initialize returned " + rv_name(rv));
  }
}

Module::~Module() {
  // A quarantined module is left as it is: C_Finalize would wait on the same lock.
  if (finalize_ && !quarantined_->load()) (void)invoke<&CK_FUNCTION_LIST::C_Finalize>(nullptr);
  // Joins the pool's threads (the one that ran C_Finalize too) before this returns, so that
  // none ends on its own later, after main perhaps; only one stuck in a call is let be.
  pool_->shutdown();
  // Modules commonly register atexit handlers or threads; unloading them is a classic crash.
  // Keep the code mapped for the life of the process (what p11-kit does for the same reason).
}

}  // namespace kyso::pkcs11::detail
