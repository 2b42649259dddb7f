#pragma once
// The baseline every benchmark divides by: the least a program can do to get signatures out of
// a token, C_SignInit + C_Sign in a loop on N sessions, straight through the module's function
// list (deliberately not through Kyso's token layer). Header-only, shared by bench/*.

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kyso::bench {

inline void check_rv(CK_RV rv, const char* what) {
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    throw std::runtime_error(std::string(what) + " failed: " + std::to_string(rv));
  }
}

class RawPkcs11 {
 public:
  /// Loads `module` (already initialized by Kyso in the same process is fine) and finds the
  /// token whose label starts with `label`.
  RawPkcs11(const char* module, const char* label, std::string pin) : pin_(std::move(pin)) {
    void* h = dlopen(module, RTLD_NOW);
    if (h == nullptr) throw std::runtime_error(std::string("cannot load ") + module);
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
    check_rv(get(&f_), "C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = f_->C_Initialize(&args);
    if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) check_rv(rv, "C_Initialize");
    CK_ULONG n = 0;
    check_rv(f_->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    check_rv(f_->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    const std::size_t len = std::strlen(label);
    for (auto s : slots) {
      CK_TOKEN_INFO ti{};
      f_->C_GetTokenInfo(s, &ti);
      if (std::memcmp(ti.label, label, len) == 0) slot_ = s;
    }
  }

  /// Signatures per second over `inputs` (DigestInfo || hash for CKM_RSA_PKCS, the bare hash
  /// for CKM_ECDSA), spread over `sessions` threads each on its own session.
  double run(unsigned char key_id, CK_MECHANISM_TYPE mech_type,
             const std::vector<std::vector<unsigned char>>& inputs, int sessions = 1) const {
    std::vector<CK_SESSION_HANDLE> hs(static_cast<std::size_t>(sessions));
    for (auto& s : hs) {
      check_rv(f_->C_OpenSession(slot_, CKF_SERIAL_SESSION, nullptr, nullptr, &s), "C_OpenSession");
    }
    check_rv(f_->C_Login(hs[0], CKU_USER,
                         reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin_.data())),
                         static_cast<CK_ULONG>(pin_.size())),
             "C_Login");
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &key_id, 1}};
    CK_OBJECT_HANDLE key = 0;
    CK_ULONG found = 0;
    check_rv(f_->C_FindObjectsInit(hs[0], tmpl, 2), "C_FindObjectsInit");
    check_rv(f_->C_FindObjects(hs[0], &key, 1, &found), "C_FindObjects");
    f_->C_FindObjectsFinal(hs[0]);
    if (found != 1) throw std::runtime_error("key not found");

    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < hs.size(); ++t) {
      pool.emplace_back([&, t] {
        CK_MECHANISM mech{mech_type, nullptr, 0};
        unsigned char sig[1024];
        for (std::size_t i = t; i < inputs.size(); i += hs.size()) {
          CK_ULONG len = sizeof sig;
          check_rv(f_->C_SignInit(hs[t], &mech, key), "C_SignInit");
          check_rv(f_->C_Sign(hs[t], const_cast<unsigned char*>(inputs[i].data()),
                              static_cast<CK_ULONG>(inputs[i].size()), sig, &len),
                   "C_Sign");
        }
      });
    }
    for (auto& th : pool) th.join();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // No C_Logout: the login is shared by every session of the process, Kyso's included.
    for (auto s : hs) f_->C_CloseSession(s);
    return static_cast<double>(inputs.size()) / secs;
  }

 private:
  CK_FUNCTION_LIST* f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  std::string pin_;
};

}  // namespace kyso::bench
