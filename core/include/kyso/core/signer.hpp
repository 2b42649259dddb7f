#pragma once
/// @file
/// The signer interface: what a token key or a remote signing credential can do. Format code
/// (CMS, XML-DSig, PAdES) computes the digest to be signed and calls sign_digest(); it never
/// knows whether the key is on a USB token or in a remote HSM.

#include <atomic>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/secret.hpp"

namespace kyso {

class Secret;

enum class HashAlgorithm { Sha256, Sha384, Sha512 };

enum class SignAlgorithm {
  RsaPkcs1Sha256,
  RsaPkcs1Sha384,
  RsaPkcs1Sha512,
  RsaPssSha256,
  RsaPssSha384,
  RsaPssSha512,
  EcdsaSha256,
  EcdsaSha384,
  EcdsaSha512,
};

/// ECDSA signatures come as DER (X.509, CMS) or as raw r||s (XML-DSig, JOSE).
enum class SignatureEncoding { Der, Raw };

/// "rsa-sha256", "rsa-pss-sha256", "ecdsa-sha256", ...
std::string_view to_string(SignAlgorithm alg) noexcept;
std::optional<SignAlgorithm> parse_sign_algorithm(std::string_view name) noexcept;
std::string_view to_string(HashAlgorithm alg) noexcept;  ///< "sha256", ...
std::optional<HashAlgorithm> parse_hash_algorithm(std::string_view name) noexcept;
HashAlgorithm hash_of(SignAlgorithm alg) noexcept;
std::size_t digest_size(HashAlgorithm alg) noexcept;
const char* openssl_md_name(HashAlgorithm alg) noexcept;  ///< "SHA256", ...
bool is_rsa(SignAlgorithm alg) noexcept;
bool is_pss(SignAlgorithm alg) noexcept;
bool is_ecdsa(SignAlgorithm alg) noexcept;
/// The algorithms a key of this type can use (the token may support fewer).
std::vector<SignAlgorithm> algorithms_for_key(const CertificateInfo& cert);
/// What a request that names no algorithm gets, with hash `h`: ECDSA for an EC key, else
/// PKCS#1 v1.5, what deployed systems verify.
SignAlgorithm default_algorithm(const CertificateInfo& cert, HashAlgorithm h) noexcept;

/// Converts an ECDSA signature between raw r||s and DER.
Bytes ecdsa_raw_to_der(std::span<const std::uint8_t> raw);
Bytes ecdsa_der_to_raw(std::span<const std::uint8_t> der, std::size_t field_bytes);

/// Where a credential lives.
struct CredentialSource {
  std::string kind;    ///< "token" or "remote"
  std::string name;    ///< token label or remote service name
  std::string serial;  ///< token serial or remote credential id
  std::string module;  ///< PKCS#11 module path or service URL
};

/// A certificate with a private key that Kyso can sign with.
struct Credential {
  CertificateInfo cert;
  std::vector<Bytes> chain;  ///< issuer certificates (DER), nearest first; may be empty
  CredentialSource source;
  std::vector<SignAlgorithm> algorithms;
  [[nodiscard]] const std::string& id() const noexcept { return cert.id; }
};

void to_json(nlohmann::json& j, const Credential& c);

/// What the signer needs from the user before it can sign.
enum class AuthKind {
  None,           ///< already logged in / authorized
  Pin,            ///< a PIN typed into Kyso's own dialog
  ProtectedPath,  ///< the token's PIN pad or its own dialog: Kyso sends no PIN
  Otp,            ///< a one-time password (remote signing second factor)
};

/// Everything authorize() will need from the user, asked in the agent's own dialogs.
struct AuthNeeds {
  bool pin = false;       ///< a PIN (the token's, or the remote key's)
  bool otp = false;       ///< a one-time code typed by the user (remote second factor)
  bool approval = false;  ///< the user also approves on another device; authorize() waits
};

/// Everything the user typed for one approval: the PIN and the one-time code, each null when it
/// was not asked. The caller owns (and wipes) them; a signer never keeps them.
struct UserAuth {
  const Secret* pin = nullptr;
  const Secret* otp = nullptr;
};

/// One item's outcome in a batch: a signature or the error that stopped it.
struct SignResult {
  Bytes signature;
  std::optional<Error> error;
  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
};

/// Optional controls for a long sign_digests(): progress and cancellation.
struct SignControl {
  /// Called as results are ready with the index of the first digest they cover. May run on
  /// several threads at once and out of order; the caller orders progress itself.
  std::function<void(std::size_t first, std::span<const SignResult> results)> chunk_done;
  /// Checked before each digest (or request) is started: once true, the digests not yet started
  /// get Error(UserCancelled).
  const std::atomic<bool>* cancel = nullptr;
};

class Signer {
 public:
  Signer() = default;
  virtual ~Signer() = default;
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;
  Signer(Signer&&) = delete;
  Signer& operator=(Signer&&) = delete;

  [[nodiscard]] virtual const Credential& credential() const = 0;

  /// What authorize() needs now (None when signing can start right away).
  [[nodiscard]] virtual AuthKind auth_required() const = 0;

  /// Everything authorize() needs from the user; by default what auth_required() says.
  [[nodiscard]] virtual AuthNeeds needs() const;

  /// Logs in / authorizes for the given digests with what the user typed (nothing for a PIN
  /// pad). Remote signers bind the authorization to exactly these digests (SCAL2); token
  /// signers ignore them. Never retried here: a wrong secret is reported to the caller.
  virtual void authorize(const UserAuth& typed, std::span<const Bytes> digests) = 0;

  /// How the authorization works beyond one login, for the audit log (empty: nothing more).
  /// A token key with CKA_ALWAYS_AUTHENTICATE says that it logs in again before each
  /// signature, and whether with the PIN kept for the batch or on the PIN pad.
  [[nodiscard]] virtual std::string_view authorization_note() const { return {}; }

  /// Asks the user for the PIN again before signature number `n` (1-based) of this job; throws
  /// Error(UserCancelled) or Error(Timeout). The returned Secret is the caller's to wipe.
  using PinPrompt = std::function<Secret(std::size_t n)>;
  /// For a token key that needs the PIN before each signature when IT's token profile says the
  /// user types it every time (pin_per_signature): the agent's dialog. Others ignore it.
  virtual void set_pin_prompt(PinPrompt /*prompt*/) {}

  /// Signs one pre-computed digest. ECDSA returns `enc`; RSA ignores it.
  virtual Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                            SignatureEncoding enc = SignatureEncoding::Der) = 0;

  /// Whether sign_digests() costs less than one sign_digest() per digest (a remote service signs
  /// a chunk per request): a batch then goes through sign_digests().
  [[nodiscard]] virtual bool signs_in_chunks() const noexcept { return false; }

  /// Signs many digests in order. The default calls sign_digest per item and, once an error
  /// that makes further items impossible occurs (token removed, PIN locked), marks the rest
  /// with that error without touching the token again. Remote signers override it to send
  /// one request per chunk.
  virtual std::vector<SignResult> sign_digests(SignAlgorithm alg, std::span<const Bytes> digests,
                                               SignatureEncoding enc = SignatureEncoding::Der,
                                               const SignControl& control = {});
};

/// Errors after which no further item of a batch can succeed on the same signer (token removed,
/// PIN locked, login gone, service unreachable, user cancelled): the rest is not attempted.
bool stops_batch(ErrorCode code) noexcept;

/// Checks that `digest` has the length `alg` expects; throws Error(DigestInvalid).
void check_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest);

}  // namespace kyso
