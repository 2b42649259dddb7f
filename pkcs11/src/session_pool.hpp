#pragma once
// Sessions of one token, reused across signatures: opening a session per signature would cost
// a round trip to the token each time. Each thread signs on a session of its own.

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "module.hpp"

namespace kyso::pkcs11::detail {

class SessionPool {
 public:
  class Lease {
   public:
    Lease(SessionPool& pool, CK_SESSION_HANDLE h, std::uint64_t generation) noexcept
        : pool_(&pool), handle_(h), generation_(generation) {}
    ~Lease() {
      if (pool_ != nullptr) pool_->release(handle_, generation_, poisoned_);
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&& o) noexcept
        : pool_(std::exchange(o.pool_, nullptr)),
          handle_(o.handle_),
          generation_(o.generation_),
          poisoned_(o.poisoned_) {}
    Lease& operator=(Lease&&) = delete;

    [[nodiscard]] CK_SESSION_HANDLE handle() const noexcept { return handle_; }
    /// The session saw an error: close it instead of handing it out again.
    void poison() noexcept { poisoned_ = true; }

   private:
    SessionPool* pool_;
    CK_SESSION_HANDLE handle_;
    std::uint64_t generation_;
    bool poisoned_ = false;
  };

  SessionPool(const Module& module, CK_SLOT_ID slot) : module_(module), slot_(slot) {}
  ~SessionPool() { clear(true); }
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  SessionPool(SessionPool&&) = delete;
  SessionPool& operator=(SessionPool&&) = delete;

  Lease acquire() {
    CK_SLOT_ID slot = 0;
    std::uint64_t generation = 0;
    {
      const std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        const CK_SESSION_HANDLE h = idle_.back();
        idle_.pop_back();
        return {*this, h, generation_};
      }
      slot = slot_;
      generation = generation_;
    }
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    KYSO_CK(module_, C_OpenSession, slot, CKF_SERIAL_SESSION, nullptr, nullptr, &h);
    return {*this, h, generation};
  }

  /// Forgets every idle session (after removal, logout or a slot change). Leases handed out
  /// before are closed when they come back instead of being reused.
  void clear(bool close_sessions) noexcept {
    std::vector<CK_SESSION_HANDLE> old;
    {
      const std::lock_guard lock(mutex_);
      old.swap(idle_);
      ++generation_;
    }
    if (close_sessions) {
      for (auto h : old) (void)module_.invoke<&CK_FUNCTION_LIST::C_CloseSession>(h);
    }
  }

  void set_slot(CK_SLOT_ID slot) noexcept {
    const std::lock_guard lock(mutex_);
    slot_ = slot;
  }

 private:
  void release(CK_SESSION_HANDLE h, std::uint64_t generation, bool poisoned) noexcept {
    {
      const std::lock_guard lock(mutex_);
      if (!poisoned && generation == generation_) {
        idle_.push_back(h);
        return;
      }
    }
    (void)module_.invoke<&CK_FUNCTION_LIST::C_CloseSession>(h);
  }

  const Module& module_;
  CK_SLOT_ID slot_;
  std::mutex mutex_;
  std::vector<CK_SESSION_HANDLE> idle_;
  std::uint64_t generation_ = 0;
};

}  // namespace kyso::pkcs11::detail
