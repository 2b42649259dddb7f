#pragma once
/// @file
/// `kyso provision`: what IT does to a token before a teacher gets it. Initialize it, set or
/// unblock PINs, generate a key pair on it, make a PKCS#10 request signed by that key with a
/// Vietnamese subject, and import the issued certificate and its chain. Every token operation
/// goes through kyso::pkcs11 (Admin for changes, Token for signing); PINs stay in Secrets.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/firmware_config/token_profiles.hpp"
#include "kyso/pkcs11/admin.hpp"

namespace kyso::firmware_config {

/// A subject DN in certificate order, e.g. {{"C","VN"},{"ST","HÀ NỘI"},...,{"CN","Nguyễn Thị
/// Ánh"}}.
using Subject = std::vector<std::pair<std::string, std::string>>;

/// Parses "C=VN, ST=HÀ NỘI, O=Trường X, UID=CCCD:001185012345, CN=Nguyễn Thị Ánh" (the order
/// is kept; "\," escapes a comma in a value). Checks attribute names, C (two letters), a CN,
/// and UID values (CCCD: 12 digits, CMND: 9 or 12, HC:, MST: 10 or 13 digits or 10-3, MNS:).
/// Throws Error(BadRequest).
Subject parse_subject(std::string_view dn);
/// "C=VN, ST=..., CN=..." (the form parse_subject reads).
std::string format_subject(const Subject& subject);

/// One token (initialized) on a module, named by label or serial.
struct TokenRef {
  std::string module;
  std::string token;  ///< label or serial
};

struct InitResult {
  unsigned long slot = 0;
  std::string serial;
  std::string label;
};

struct CsrResult {
  Bytes der;
  std::string pem;
  pkcs11::KeyPairInfo key;
};

struct ImportResult {
  pkcs11::KeyPairInfo key;         ///< the key pair the certificate belongs to
  bool certificate_added = false;  ///< false when the same certificate was already there
  std::size_t chain_added = 0;
};

class Provisioner {
 public:
  explicit Provisioner(std::string module_path);

  /// The profile of the token model being provisioned: new PINs must meet its PIN policy and
  /// keygen makes only the algorithms it lists. Checked before the token is touched.
  void set_profile(TokenProfile profile) { profile_ = std::move(profile); }

  /// Initializes a blank token (or the one named `slot_or_label` — which erases it when
  /// `allow_reinit`) with a label, an SO PIN and a user PIN.
  InitResult init_token(std::string_view label, const Secret& so_pin, const Secret& user_pin,
                        const std::optional<std::string>& target = std::nullopt,
                        bool allow_reinit = false);
  /// The user changes their own PIN (old PIN required).
  void change_pin(std::string_view token, const Secret& old_pin, const Secret& new_pin);
  /// The SO changes the SO PIN.
  void change_so_pin(std::string_view token, const Secret& old_so_pin, const Secret& new_so_pin);
  /// The SO sets a new user PIN (C_InitPIN): unblocks a locked PIN.
  void unblock_pin(std::string_view token, const Secret& so_pin, const Secret& new_pin);
  /// Generates a key pair on the token. `id` empty: a fresh random 16-byte CKA_ID. Refuses a
  /// label or id already used by another key pair on the token.
  pkcs11::KeyPairInfo keygen(std::string_view token, const Secret& pin, pkcs11::KeyAlgorithm alg,
                             std::string_view label, Bytes id = {});
  /// Key pairs on the token.
  std::vector<pkcs11::KeyPairInfo> key_pairs(std::string_view token, const Secret& pin);
  /// A PKCS#10 request for the key pair with this label or hex CKA_ID, signed on the token
  /// (SHA-256; RSA PKCS#1 v1.5 or ECDSA), asking for digitalSignature + nonRepudiation.
  CsrResult make_csr(std::string_view token, const Secret& pin, std::string_view key,
                     const Subject& subject);
  /// Imports an end-entity certificate (and its chain) onto the token, with the CKA_ID and
  /// label of the key pair it certifies. Throws Error(KeyNotFound) when its public key is not
  /// on the token. Certificates already present are not added twice.
  ImportResult import_certificate(std::string_view token, const Secret& pin,
                                  std::span<const Bytes> certificates);

  /// The slot of an initialized token by label or serial; throws Error(TokenNotFound).
  pkcs11::SlotState find_token(std::string_view token);
  pkcs11::Admin& admin() noexcept { return admin_; }
  [[nodiscard]] const std::string& module_path() const noexcept { return module_; }

 private:
  void check_new_pin(const Secret& pin) const;
  void check_new_so_pin(const Secret& pin) const;

  std::string module_;
  pkcs11::Admin admin_;
  std::optional<TokenProfile> profile_;
};

/// One row of `kyso provision batch`: one person, one token.
struct BatchRow {
  std::size_t line = 0;  ///< line in the CSV (for messages)
  std::string label;     ///< token label, unique in the file
  Subject subject;
  pkcs11::KeyAlgorithm key = pkcs11::KeyAlgorithm::Rsa2048;
};

/// Reads the staff CSV. Header names (any order): label, cn, uid (several separated by ';'),
/// title, o, ou, l, st, c, email, key. `defaults` fill o/ou/l/st/c/title left empty in a row.
/// Throws Error(BadRequest) naming the line of any mistake.
std::vector<BatchRow> read_batch_csv(
    const std::filesystem::path& csv,
    const std::vector<std::pair<std::string, std::string>>& defaults);

struct BatchOptions {
  std::filesystem::path csv;
  std::filesystem::path out_dir;     ///< CSRs go here as <label>.csr
  std::filesystem::path state_file;  ///< default: <out_dir>/provision-state.json
  std::filesystem::path certs_dir;   ///< optional: <label>.crt found here is imported
  std::vector<std::pair<std::string, std::string>> defaults;
  bool init_blank = true;  ///< initialize a blank token for a row with none
  std::size_t limit = 0;   ///< stop after this many rows done in this run (0: all)
  std::string key_label = "kyso-sign";
  /// Field use, one USB token at a time: called when a row has neither its token nor a blank
  /// one present. Returns once the person has plugged one in (true) or wants to stop (false:
  /// the batch ends as interrupted and resumes later). Unset: such a row fails.
  std::function<bool(const BatchRow&)> insert_token;
};

struct BatchRowReport {
  std::size_t index = 0;  ///< 1-based row number
  std::string label;
  std::string status;  ///< "done", "skipped" (done in an earlier run), "failed", "pending"
  std::string serial;
  std::string key_id;
  std::string csr;
  std::string certificate;           ///< "imported", "present" or empty
  std::vector<std::string> actions;  ///< what this run did: "init", "keygen", "csr", "import"
  std::string error;
};

struct BatchReport {
  std::vector<BatchRowReport> rows;
  std::size_t done = 0, skipped = 0, failed = 0, pending = 0;
  bool interrupted = false;
};

/// Runs the batch, writing the state file after every row, so a run stopped at any point
/// (Ctrl-C, --limit, a crash) resumes where it left off. A row whose token already holds the
/// key pair labelled `key_label` reuses it: a resumed run never makes a second key.
/// `progress(i, n, row)` is called after each row; `stop()` is polled between rows.
BatchReport run_batch(
    Provisioner& p, const BatchOptions& options, const Secret& so_pin, const Secret& user_pin,
    const std::function<void(std::size_t, std::size_t, const BatchRowReport&)>& progress = {},
    const std::function<bool()>& stop = {});

}  // namespace kyso::firmware_config
