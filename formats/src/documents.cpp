// Loading kyso-formats-documents.so: the first candidate that exists, once per process.

#include "kyso/formats/documents.hpp"

#include <cstdlib>
#include <map>
#include <mutex>

#include "kyso/core/error.hpp"
#include "kyso/core/platform.hpp"

namespace kyso::formats {
namespace {

std::filesystem::path program_dir() {
  const auto exe = platform::executable_path();
  return exe.empty() ? std::filesystem::path() : exe.parent_path();
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
  std::string why;
  void* handle = platform::load_library(path.string(), why);
  if (handle == nullptr) {
    throw Error(ErrorCode::FormatsUnavailable, "cannot load " + path.string() + ": " + why);
  }
  using Entry = const DocumentFunctions* (*)();
  auto* entry = reinterpret_cast<Entry>(platform::library_symbol(handle, kDocumentsEntryPoint));
  if (entry == nullptr) {
    platform::unload_library(handle);
    throw Error(ErrorCode::FormatsUnavailable,
                path.string() + " has no " + kDocumentsEntryPoint + " (not Kyso's module)");
  }
  const DocumentFunctions* f = entry();
  try {
    checked(f, path);
  } catch (...) {
    platform::unload_library(handle);
    throw;
  }
  loaded.emplace(path, f);
  return *f;
}

}  // namespace kyso::formats
