#pragma once
// The one place that calls PKCS#11. Every call goes through Module::call<>(), which refuses a
// null function pointer and maps the CK_RV to a typed kyso::Error (call.cpp).

#include <p11-kit/pkcs11.h>

#include <memory>
#include <string>
#include <string_view>

#include "kyso/core/error.hpp"

namespace kyso::pkcs11::detail {

/// Maps a PKCS#11 return value to Kyso's error: PinIncorrect, PinLocked, TokenRemoved, ...,
/// or TokenError carrying the CK_RV, the call and where it was made.
[[noreturn]] void throw_rv(CK_RV rv, std::string_view call, std::string_view where);
/// CKR_xxx name for logs and details.
std::string rv_name(CK_RV rv);
/// Trims a space-padded fixed-size PKCS#11 string field.
std::string fixed_string(const unsigned char* data, std::size_t size);

class Module {
 public:
  /// One instance per canonical path for the whole process: C_Initialize and C_Finalize are
  /// process-wide, so two owners would finalize each other's sessions.
  static std::shared_ptr<Module> load(const std::string& path);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const CK_INFO& info() const noexcept { return info_; }

  /// C_Finalize then C_Initialize: for middleware that needs it after a token was plugged in
  /// again (a token quirk). Every session of the module is gone afterwards. Throws
  /// Error(ModuleLoadFailed) when C_Initialize fails.
  void reinitialize();

  /// Calls one PKCS#11 function and returns its CK_RV (for callers that branch on it).
  template <auto Member, typename... Args>
  CK_RV invoke(Args&&... args) const noexcept {
    auto fn = functions_->*Member;
    if (fn == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
    return fn(std::forward<Args>(args)...);
  }

  /// Calls one PKCS#11 function and throws the mapped error unless it returns CKR_OK.
  template <auto Member, typename... Args>
  void call(std::string_view name, std::string_view where, Args&&... args) const {
    const CK_RV rv = invoke<Member>(std::forward<Args>(args)...);
    if (rv != CKR_OK) throw_rv(rv, name, where);
  }

 private:
  Module(std::string path, void* handle, CK_FUNCTION_LIST* functions);

  std::string path_;
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* functions_ = nullptr;
  CK_INFO info_{};
  bool finalize_ = true;
};

}  // namespace kyso::pkcs11::detail

/// KYSO_CK(module, C_Sign, args...): checked call that names the function and the caller.
#define KYSO_CK(module, fn, ...) \
  (module).call<&CK_FUNCTION_LIST::fn>(#fn, __func__ __VA_OPT__(, ) __VA_ARGS__)
