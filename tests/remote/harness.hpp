#pragma once
// kyso-appliance on loopback for tests: a private copy of the fixture's SoftHSM token (made once
// per process, before any module loads), a throw-away TLS CA, two users with TOTP, and an
// in-process Appliance on a free port with its own SQLite state.

#include <functional>
#include <memory>
#include <string>

#include "kyso/appliance/appliance.hpp"
#include "kyso/remote/csc_client.hpp"

namespace kyso::test::remote {

inline constexpr const char* kPrincipalPassword = "mật khẩu hiệu trưởng";
inline constexpr const char* kTeacherPassword = "teacher-pw";
inline constexpr const char* kClientSecret = "school-server-secret";
inline constexpr const char* kPrincipalTotp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
inline constexpr const char* kTeacherTotp = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Env {
  std::string dir;      ///< this process's scratch dir (token copy, TLS files)
  std::string ca_file;  ///< the TLS CA the clients trust
  std::string cert_file;
  std::string key_file;
  std::string principal_hash;
  std::string teacher_hash;
  std::string client_hash;
};
/// Made once per process.
const Env& env();

class Harness {
 public:
  /// `tweak` adjusts the configuration (limits) before the appliance starts.
  explicit Harness(const std::function<void(kyso::appliance::ApplianceConfig&)>& tweak = {});
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  Harness(Harness&&) = delete;
  Harness& operator=(Harness&&) = delete;

  [[nodiscard]] std::string base_url() const;
  [[nodiscard]] std::uint16_t port() const { return app_->port(); }
  [[nodiscard]] kyso::remote::ClientOptions options() const;
  /// A client logged in as `user` ("principal" or "teacher").
  std::shared_ptr<kyso::remote::CscClient> login(const std::string& user);
  kyso::appliance::Appliance& appliance() { return *app_; }
  /// Stops the appliance and closes every connection, as if its process died.
  void kill() { app_.reset(); }
  const kyso::appliance::ApplianceConfig& config() const { return config_; }

 private:
  std::string state_dir_;
  kyso::appliance::ApplianceConfig config_;
  std::unique_ptr<kyso::appliance::Appliance> app_;
};

/// Successive fresh TOTPs for a secret (time steps -2, -1, 0, 1, ... around now; tests run the
/// appliance with a window of 3 so several authorizations fit in one test without waiting).
class OtpSource {
 public:
  explicit OtpSource(std::string secret) : secret_(std::move(secret)) {}
  Secret next();
  /// A code that is certainly wrong now.
  Secret wrong();

 private:
  std::string secret_;
  int step_ = -2;
};

Secret secret(std::string_view s);

}  // namespace kyso::test::remote
