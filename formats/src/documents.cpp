// Loading kyso-formats-documents.so: the first candidate that exists, once per process.

#include "kyso/formats/documents.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "kyso/core/error.hpp"

namespace kyso::formats {
namespace {

std::filesystem::path program_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

const DocumentFunctions& checked(const DocumentFunctions* f, const std::filesystem::path& path) {
  if (f == nullptr) {
    throw Error(ErrorCode::FormatsUnavailable, path.string() + ": the entry point returned null");
  }
  if (f->abi != kDocumentsAbi || f->size != sizeof(DocumentFunctions) ||
      std::string_view(f->version) != KYSO_VERSION_STRING) {
    throw Error(ErrorCode::FormatsUnavailable, path.string() + " is from another build (version " +
                                                   f->version + ", abi " + std::to_string(f->abi) +
                                                   "; kyso " + KYSO_VERSION_STRING + " needs abi " +
                                                   std::to_string(kDocumentsAbi) + ")");
  }
  return *f;
}

}  // namespace

std::vector<std::filesystem::path> documents_module_candidates(const std::string& configured) {
  if (!configured.empty()) return {configured};
  if (const char* env = std::getenv(kDocumentsModuleEnv); env != nullptr && *env != '\0') {
    return {env};
  }
  const auto dir = program_dir();
  if (dir.empty()) return {};
  return {dir / KYSO_FORMATS_MODULE_NAME,
          (dir / KYSO_FORMATS_MODULE_RELDIR / KYSO_FORMATS_MODULE_NAME).lexically_normal()};
}

const DocumentFunctions& load_documents_module(const std::string& configured,
                                               std::filesystem::path* loaded_from) {
  // Loaded modules stay for the life of the process: their code may be on any thread's stack
  // and exceptions they threw may still be alive.
  static std::mutex mutex;
  static std::map<std::filesystem::path, const DocumentFunctions*> loaded;

  const auto candidates = documents_module_candidates(configured);
  std::filesystem::path path;
  std::string tried;
  for (const auto& c : candidates) {
    std::error_code ec;
    if (std::filesystem::exists(c, ec)) {
      path = c;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c.string();
  }
  if (path.empty()) {
    throw Error(ErrorCode::FormatsUnavailable,
                std::string(KYSO_FORMATS_MODULE_NAME) + " not found (looked for " +
                    (tried.empty() ? std::string("nothing: no program directory") : tried) + ")");
  }
  if (loaded_from != nullptr) *loaded_from = path;

  const std::lock_guard lock(mutex);
  if (const auto it = loaded.find(path); it != loaded.end()) return *it->second;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    throw Error(ErrorCode::FormatsUnavailable,
                "cannot load " + path.string() + ": " + (why != nullptr ? why : "dlopen failed"));
  }
  using Entry = const DocumentFunctions* (*)();
  auto* entry = reinterpret_cast<Entry>(::dlsym(handle, kDocumentsEntryPoint));
  if (entry == nullptr) {
    ::dlclose(handle);
    throw Error(ErrorCode::FormatsUnavailable,
                path.string() + " has no " + kDocumentsEntryPoint + " (not Kyso's module)");
  }
  const DocumentFunctions* f = entry();
  try {
    checked(f, path);
  } catch (...) {
    ::dlclose(handle);
    throw;
  }
  loaded.emplace(path, f);
  return *f;
}

}  // namespace kyso::formats
