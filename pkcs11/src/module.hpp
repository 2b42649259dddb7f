#pragma once
// The one place that calls PKCS#11. Every call goes through Module::call<>(), which refuses a
// null function pointer and maps the CK_RV to a typed kyso::Error (call.cpp).

#include "cryptoki.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "kyso/core/error.hpp"
#include "kyso/pkcs11/library.hpp"
#include "watchdog.hpp"

namespace kyso::pkcs11::detail {

/// What Module::invoke returns for a call that did not answer by its deadline, or for any call
/// to a quarantined module (a vendor-defined value no module returns: "KYSO" in ASCII).
inline constexpr CK_RV kRvUnresponsive = CKR_VENDOR_DEFINED | 0x4b59534fUL;

/// How long a call may take before the watchdog gives up on it.
enum class CallKind {
  Quick,  ///< slot and token state, sessions, objects, login with a typed PIN
  Sign,   ///< C_SignInit, C_Sign
  Human,  ///< waits for a person (PIN pad) or for the card's own long work (key generation)
};

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
  /// process-wide, so two owners would finalize each other's sessions. When the instance for
  /// `path` is quarantined, a private copy of the file is loaded afresh instead (the loader
  /// gives a copy its own globals, so the module starts clean); at most kMaxReloads times per
  /// path and process, then Error(TokenUnresponsive). `timeouts` apply to this module's calls
  /// from now on (the last Library to load a path sets them).
  static std::shared_ptr<Module> load(const std::string& path, const CallTimeouts& timeouts = {});
  static constexpr int kMaxReloads = 8;
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  /// The path as configured (also for a private copy loaded after a quarantine).
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const CK_INFO& info() const noexcept { return info_; }
  /// How many times this path was loaded afresh in this process before this instance.
  [[nodiscard]] int generation() const noexcept { return generation_; }

  /// A call did not return by its deadline: this instance is never called again (its thread
  /// stays blocked in it; finalizing or unloading it could only hang or crash too).
  [[nodiscard]] bool quarantined() const noexcept { return quarantined_->load(); }

  /// C_Finalize then C_Initialize: for middleware that needs it after a token was plugged in
  /// again (a token quirk). Every session of the module is gone afterwards. Throws
  /// Error(ModuleLoadFailed) when C_Initialize fails.
  void reinitialize();

  /// Calls one PKCS#11 function under the watchdog and returns its CK_RV (for callers that
  /// branch on it): kRvUnresponsive when it did not return in time or the module is
  /// quarantined. Every call into a module goes through here.
  template <auto Member, typename... Args>
  CK_RV invoke(Args... args) const noexcept {
    return invoke_as<Member>(kind_of<Member>(), nullptr, args...);
  }

  /// invoke() with an explicit deadline class, and `keep` held until the call returns, even
  /// after the caller gave up on it: the buffers a late answer would write into.
  template <auto Member, typename... Args>
  CK_RV invoke_as(CallKind kind, std::shared_ptr<const void> keep, Args... args) const noexcept {
    auto fn = functions_->*Member;
    if (fn == nullptr) return CKR_FUNCTION_NOT_SUPPORTED;
    return run(kind, [fn, keep = std::move(keep), args...]() { return fn(args...); });
  }

  /// A run of calls on one session (C_SignInit and C_Sign for each digest of a batch) in one
  /// hand-off to the call pool, each call under its own deadline of `kind`: `fn` calls
  /// `steps.begin()` right before each call (CallPool::run). `fn` gets the function list (its
  /// entries may be null); whatever it writes must be owned by it (captured), as with `keep`.
  CK_RV invoke_run(CallKind kind,
                   std::function<CK_RV(const CK_FUNCTION_LIST&, StepClock&)> fn) const noexcept {
    const CK_FUNCTION_LIST* functions = functions_;
    auto steps = std::make_shared<StepClock>();
    return run(
        kind, [functions, steps, fn = std::move(fn)]() { return fn(*functions, *steps); }, steps);
  }

  /// Calls one PKCS#11 function and throws the mapped error unless it returns CKR_OK.
  template <auto Member, typename... Args>
  void call(std::string_view name, std::string_view where, Args... args) const {
    const CK_RV rv = invoke<Member>(args...);
    if (rv != CKR_OK) throw_rv(rv, name, where);
  }

  template <auto Member>
  static constexpr CallKind kind_of() noexcept {
    if constexpr (is<Member, &CK_FUNCTION_LIST::C_Sign>() ||
                  is<Member, &CK_FUNCTION_LIST::C_SignInit>()) {
      return CallKind::Sign;
    } else if constexpr (is<Member, &CK_FUNCTION_LIST::C_InitToken>() ||
                         is<Member, &CK_FUNCTION_LIST::C_GenerateKeyPair>() ||
                         is<Member, &CK_FUNCTION_LIST::C_InitPIN>() ||
                         is<Member, &CK_FUNCTION_LIST::C_SetPIN>()) {
      return CallKind::Human;
    } else {
      return CallKind::Quick;
    }
  }

 private:
  template <auto A, auto B>
  static constexpr bool is() noexcept {
    if constexpr (std::is_same_v<decltype(A), decltype(B)>) {
      return A == B;
    } else {
      return false;
    }
  }
  Module(std::string path, void* handle, CK_FUNCTION_LIST* functions, int generation,
         std::shared_ptr<std::atomic<bool>> stuck, const CallTimeouts& timeouts);
  CK_RV run(CallKind kind, std::function<CK_RV()> fn,
            std::shared_ptr<StepClock> steps = nullptr) const noexcept;
  void set_timeouts(const CallTimeouts& t) noexcept;

  std::string path_;
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* functions_ = nullptr;
  CK_INFO info_{};
  bool finalize_ = true;
  int generation_ = 0;
  std::shared_ptr<CallPool> pool_ = std::make_shared<CallPool>();
  std::shared_ptr<std::atomic<bool>> quarantined_;  // shared with the registry: the image's
  std::atomic<std::int64_t> quick_ms_{0};
  std::atomic<std::int64_t> sign_ms_{0};
  std::atomic<std::int64_t> human_ms_{0};
};

}  // namespace kyso::pkcs11::detail

/// KYSO_CK(module, C_Sign, args...): checked call that names the function and the caller.
#define KYSO_CK(module, fn, ...) \
  (module).call<&CK_FUNCTION_LIST::fn>(#fn, __func__ __VA_OPT__(, ) __VA_ARGS__)
