#include "module.hpp"

#include <dlfcn.h>
#include <p11-kit/p11-kit.h>

#include <filesystem>
#include <map>
#include <mutex>

namespace kyso::pkcs11::detail {
namespace {

std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<Module>>& registry() {
  static std::map<std::string, std::weak_ptr<Module>> r;
  return r;
}

}  // namespace

std::string fixed_string(const unsigned char* data, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  const auto end = s.find_last_not_of(" \0", std::string::npos, 2);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

std::string rv_name(CK_RV rv) {
  const char* text = p11_kit_strerror(rv);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%08lx", static_cast<unsigned long>(rv));
  return std::string(hex) + (text != nullptr ? std::string(" (") + text + ")" : "");
}

std::shared_ptr<Module> Module::load(const std::string& path) {
  std::error_code ec;
  const auto canonical = std::filesystem::canonical(path, ec);
  if (ec) throw Error(ErrorCode::ModuleLoadFailed, path + ": " + ec.message());
  const std::string key = canonical.string();

  const std::lock_guard lock(g_registry_mutex);
  if (auto existing = registry()[key].lock()) return existing;

  void* handle = ::dlopen(key.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorCode::ModuleLoadFailed,
                path + ": " + (why != nullptr ? why : "dlopen failed"));
  }
  auto* get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* functions = nullptr;
  if (get_list == nullptr || get_list(&functions) != CKR_OK || functions == nullptr) {
    ::dlclose(handle);
    throw Error(ErrorCode::ModuleLoadFailed,
                path + ": not a PKCS#11 module (no C_GetFunctionList)");
  }
  std::shared_ptr<Module> m(new Module(path, handle, functions));
  registry()[key] = m;
  return m;
}

Module::Module(std::string path, void* handle, CK_FUNCTION_LIST* functions)
    : path_(std::move(path)), handle_(handle), functions_(functions) {
  // OS locking: Kyso signs from several threads, each on its own session.
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  const CK_RV rv = invoke<&CK_FUNCTION_LIST::C_Initialize>(&args);
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    finalize_ = false;  // someone else in this process owns it; leave it to them
  } else if (rv != CKR_OK) {
    ::dlclose(handle_);
    throw Error(ErrorCode::ModuleLoadFailed, path_ + ": C_Initialize returned " + rv_name(rv));
  }
  if (invoke<&CK_FUNCTION_LIST::C_GetInfo>(&info_) != CKR_OK) info_ = CK_INFO{};
}

void Module::reinitialize() {
  if (!finalize_) return;  // another owner in this process initialized it: not ours to reset
  (void)invoke<&CK_FUNCTION_LIST::C_Finalize>(nullptr);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  const CK_RV rv = invoke<&CK_FUNCTION_LIST::C_Initialize>(&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    throw Error(ErrorCode::ModuleLoadFailed, path_ + ": C_Initialize returned " + rv_name(rv));
  }
}

Module::~Module() {
  if (finalize_) (void)invoke<&CK_FUNCTION_LIST::C_Finalize>(nullptr);
  // Modules commonly register atexit handlers or threads; unloading them is a classic crash.
  // Keep the code mapped for the life of the process (what p11-kit does for the same reason).
}

}  // namespace kyso::pkcs11::detail
