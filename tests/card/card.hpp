#pragma once
// The OpenSC path in tests: pcscd with the vpcd reader (ctest fixture "card", made by
// tests/card/card-fixture.sh) and PIV cards played by tests/card/kyso-piv-card.py, which a test
// inserts and pulls by starting and killing it. OpenSC's own PKCS#11 module drives the cards.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/pkcs11/library.hpp"

namespace kyso::test {

struct CardCredential {
  std::string name;  ///< card-teacher, card-teacher-ec, card-seal
  std::string card;  ///< card-a or card-b
  std::string slot;  ///< PIV key slot: 9a, 9c
  std::string key;   ///< rsa2048 | ec-p256
  std::string role;
  std::string cert_path;
  Bytes cert_der;
  [[nodiscard]] std::string credential_id() const;  ///< SHA-256 of the certificate
};

struct CardFixture {
  std::string dir;
  std::string opensc_module;
  std::string opensc_conf;
  std::string emulator;
  std::string user_pin;
  std::string puk;
  int max_tries = 3;
  std::map<std::string, int> ports;              ///< card -> the vpcd port its reader listens on
  std::map<std::string, std::string> card_dirs;  ///< card -> its keys, certificates, state.json
  std::vector<CardCredential> credentials;
  [[nodiscard]] const CardCredential& credential(const std::string& name) const;
};

/// The card fixture of this ctest run (KYSO_CARD_DIR, else test-card beside KYSO_TEST_DIR). Where
/// pcscd could not run, prints the fixture's reason and exits with 77, which ctest reports as
/// skipped (SKIP_RETURN_CODE). Points OpenSC at the fixture's opensc.conf before the module is
/// loaded.
const CardFixture& card_fixture();

/// How long the tests let a call into OpenSC take (the agent's default is far longer, for slow
/// USB tokens): a card answers in milliseconds, and OpenSC 0.23 never returns from the call
/// after a card is pulled mid-operation, so a test would wait out the default deadline.
inline constexpr std::chrono::seconds kCardCallTimeout{5};

/// A library over OpenSC's PKCS#11 module only.
std::unique_ptr<pkcs11::Library> opensc_library();

/// One card in its reader: the emulator process on a fresh copy of the card's state.
class VirtualCard {
 public:
  struct Options {
    int exit_after_signatures = 0;  ///< > 0: the card is pulled right after the Nth signature
    double sign_delay_ms = 0;
  };
  explicit VirtualCard(std::string card, Options options);
  explicit VirtualCard(std::string card) : VirtualCard(std::move(card), Options{}) {}
  ~VirtualCard();
  VirtualCard(const VirtualCard&) = delete;
  VirtualCard& operator=(const VirtualCard&) = delete;
  VirtualCard(VirtualCard&&) = delete;
  VirtualCard& operator=(VirtualCard&&) = delete;

  /// Starts the card (again: same state, so its PIN counter is kept) with `options`.
  void insert(Options options);
  void insert() { insert(options_); }
  /// Kills the card: the reader reports it gone.
  void pull();
  /// Waits until `library` lists this card's token (10 s at most); returns it.
  std::shared_ptr<pkcs11::Token> wait_for_token(pkcs11::Library& library) const;
  /// Waits until no token of `library` is this card (10 s at most).
  void wait_until_gone(pkcs11::Library& library) const;
  /// What the card was asked, one line each ("VERIFY pin ok", "SIGN 9c ok n=3", ...).
  [[nodiscard]] std::vector<std::string> log() const;
  /// The token label OpenSC gives this card (the CN of its slot-9A certificate).
  [[nodiscard]] const std::string& label() const { return label_; }
  /// The card's state file (PIN, counters), as the card wrote it last.
  [[nodiscard]] std::filesystem::path state_file() const { return dir_ / "state.json"; }

 private:
  std::string card_;
  Options options_;
  std::filesystem::path dir_;
  std::string label_;
  pid_t pid_ = -1;
};

}  // namespace kyso::test
