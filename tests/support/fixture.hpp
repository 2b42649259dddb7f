#pragma once
// Test helpers: the demo token made by tests/pki/make-demo-token.sh (its manifest.json), an
// independent OpenSSL verifier, the fault-injection module's controls, and running the CLI.

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::test {

struct DemoCredential {
  std::string name;  ///< teacher, principal, seal, teacher-ec, expired, revoked
  std::string role;
  std::string id_hex;  ///< CKA_ID
  std::string key;     ///< rsa2048 | rsa3072 | ec-p256
  std::string cert_path;
  Bytes cert_der;
  std::string status;                               ///< valid | expired | revoked
  [[nodiscard]] std::string credential_id() const;  ///< SHA-256 of the certificate
};

struct Fixture {
  std::string dir;
  nlohmann::json manifest;
  std::string module;        ///< SoftHSM2
  std::string fault_module;  ///< kyso_fault_pkcs11.so, wrapping SoftHSM2
  std::string user_pin;
  std::string pin_file;
  std::vector<DemoCredential> credentials;
  [[nodiscard]] const DemoCredential& credential(const std::string& name) const;
};

/// The fixture of this ctest run (KYSO_TEST_DIR); skips the test when it is missing.
const Fixture& fixture();

/// Verifies `signature` over `digest` with the certificate's public key, by OpenSSL alone.
bool openssl_verify(std::span<const std::uint8_t> cert_der, SignAlgorithm alg,
                    std::span<const std::uint8_t> digest, std::span<const std::uint8_t> signature);

/// The fault module's controls (tests/fault-module/README.md), reached in this process.
struct Faults {
  static void set(const char* key, long value);
  static long get(const char* key);
  static void reset();
};

/// Runs a command, returns {exit code, stdout}.
std::pair<int, std::string> run(const std::string& command);

/// A loopback TCP port free right now (bound and released), for a server a test starts.
int free_loopback_port();

}  // namespace kyso::test
