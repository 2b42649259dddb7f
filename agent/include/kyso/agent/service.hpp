#pragma once
/// @file
/// What the agent does, without the WebSocket: the signing desk (one path for every job:
/// choose the credential, check its certificate, ask the user in the agent's own dialog,
/// authorize once, sign in order, audit, report), pairing, and the credentials present.
/// Blocking: the protocol calls it from its worker pool, never from an io thread. Thread-safe.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kyso/agent/audit.hpp"
#include "kyso/agent/items.hpp"
#include "kyso/agent/pairing.hpp"
#include "kyso/agent/pinentry.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/pkcs11/usb.hpp"
#include "kyso/remote/remote_signer.hpp"

namespace kyso::agent {

inline const std::string_view kAgentVersion = kyso::version();  // PROJECT_VERSION
inline constexpr int kProtocolVersion = 1;
/// How long an origin's pairing requests are refused after its pairing dialog was cancelled,
/// timed out or abandoned (docs/protocol.md, PAIR_COOLDOWN): 5 s after the first, four times
/// longer after each further one in a row (20 s, 80 s, 320 s), at most 10 min. The count starts
/// again after a confirmed pairing or 10 min without an unconfirmed dialog.
inline constexpr std::chrono::seconds kPairCooldownFirst{5};
inline constexpr std::chrono::seconds kPairCooldownMax{600};

/// One thing to sign: a pre-computed hash, or a document (xml, pdf, cms; items.hpp).
struct Item {
  HashAlgorithm hash_algorithm = HashAlgorithm::Sha256;
  /// The hash to sign; for a document, its SHA-256: what the approval covers.
  Bytes digest;
  std::string title;  ///< shown in the dialog, already cleaned of control characters
  ItemType type = ItemType::Hash;
  std::shared_ptr<const DocumentItem> document;  ///< set for xml, pdf and cms
};

/// A signing request as the user will approve it.
struct SignJob {
  std::string origin;
  Role role = Role::Teacher;
  std::optional<std::string> credential_id;
  std::optional<SignAlgorithm> algorithm;
  SignatureEncoding encoding = SignatureEncoding::Der;
  std::vector<Item> items;
  bool batch = false;
  Language language = Language::Vi;
  /// Where signed documents are written (the connection's transfer directory).
  std::filesystem::path scratch;
};

struct SignOutcome {
  Credential credential;
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  std::vector<SignResult> results;  ///< one per item, in order
  /// Document jobs: the signed document of each item that succeeded.
  std::vector<std::optional<DocumentOutput>> documents;
  bool cancelled = false;
};

/// credentials.list's question.
struct CredentialQuery {
  std::optional<Role> role;
  std::optional<SubjectKind> kind;
  bool valid_now = false;
  bool sign_in = false;  ///< sign in to remote services not signed in (their password dialog)
};

/// A credential as credentials.list shows it.
struct ListedCredential {
  Credential credential;
  std::vector<Role> roles;  ///< the roles it may sign as
  std::optional<Role> suggested;
};

struct CredentialList {
  std::vector<ListedCredential> credentials;
  nlohmann::json remote_services;  ///< null without remote services
};

/// Which token a credential lives on, for logging out after a job (no token: a remote
/// credential, source.kind "remote").
struct Located {
  std::shared_ptr<pkcs11::Token> token;
  Credential credential;
};

class RemoteSources;

/// The signer as the approval dialog names them: the common name and one UID. A person's
/// certificate may carry their employer's MST before their CCCD (DOMAIN.md): the personal ID
/// (CCCD, else CMND, else passport HC) is the one that says who signs; otherwise the first UID.
std::string signer_label(const CertificateInfo& c);

class Service {
 public:
  /// Called after each item: index, its result.
  using Progress = std::function<void(std::size_t, const SignResult&)>;

  /// Settles the state directory once (the configured one, else default_state_dir(), made
  /// 0700): config().state_dir is where everything of the agent's state lives from then on.
  explicit Service(firmware_config::AgentConfig config);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  Service(Service&&) = delete;
  Service& operator=(Service&&) = delete;

  [[nodiscard]] const firmware_config::AgentConfig& config() const noexcept { return config_; }
  [[nodiscard]] pkcs11::Library& library() noexcept { return *library_; }
  /// The USB tokens the agent knows (IT's token profiles, else the built-in table): their
  /// modules are loaded when installed, and a plugged-in one without its module is diagnosed.
  [[nodiscard]] const std::vector<pkcs11::KnownToken>& known_tokens() const noexcept {
    return known_tokens_;
  }
  [[nodiscard]] PairingStore& pairings() noexcept { return pairings_; }
  [[nodiscard]] AuditLog& audit() noexcept { return *audit_; }

  /// IT's allow-list, compared in normalize_origin()'s form.
  [[nodiscard]] bool allow_listed(std::string_view origin) const;
  /// Allow-listed or paired by the user.
  [[nodiscard]] bool trusted(std::string_view origin) const;

  /// The credentials present (for a role). With `sign_in` the remote services not signed in
  /// ask for their password first (the agent's dialog, naming `origin`; the one dialog slot).
  CredentialList list_credentials(const CredentialQuery& q, const std::string& origin = {},
                                  Language lang = Language::Vi,
                                  const std::atomic<bool>* cancel = nullptr);

  /// Takes the pairing dialog's slot (its own: a pairing dialog never holds up signing), makes a
  /// pairing code and passes it to `announce` (the page shows it), then shows the pairing dialog
  /// with it; stores the pairing when the user confirms. A dialog that ends otherwise (Cancel,
  /// timeout, the page gone) starts the origin's cooldown: its pairs are refused for
  /// kPairCooldownFirst, growing with each further one. Throws Error(PairCooldown), Error(Busy),
  /// Error(UserCancelled), Error(Timeout).
  void pair(const std::string& origin, Language lang, const std::atomic<bool>* abort,
            const std::function<void(const std::string& code)>& announce);

  /// Chooses the credential, checks it, asks for approval and the PIN, logs in once, signs
  /// every item in order (stopping at `cancel`), logs out. Throws for errors that stop the job
  /// before the first signature; item errors are in the outcome.
  /// Throws Error(Busy) while another approval or signing job runs.
  SignOutcome sign(const SignJob& job, const std::atomic<bool>& cancel, const Progress& progress);

  /// True while an approval or signing job holds the job slot.
  [[nodiscard]] bool busy() const noexcept { return busy_.load(); }

  /// Records a refusal that happened outside a job (refused upgrade, unpaired origin).
  void audit_refusal(const std::string& origin, const std::string& role, ErrorCode code,
                     const std::string& detail) noexcept;

  /// The role's credentials among those present; `why_none` says what is missing when empty.
  std::vector<Located> credentials_for(Role role, std::string* why_none);

 private:
  /// The one approval or signing job at a time (one signing dialog on screen, one user), held
  /// for exactly the job's life on the thread that runs it; pairing dialogs have their own.
  class JobSlot {
   public:
    /// Throws Error(Busy) when another job holds it; `what` names that job.
    explicit JobSlot(std::atomic<bool>& busy,
                     std::string_view what = "another approval or signing job is running");
    ~JobSlot() { busy_.store(false); }
    JobSlot(const JobSlot&) = delete;
    JobSlot& operator=(const JobSlot&) = delete;
    JobSlot(JobSlot&&) = delete;
    JobSlot& operator=(JobSlot&&) = delete;

   private:
    std::atomic<bool>& busy_;
  };

  // The signing desk (desk.cpp), in the order a job meets them.
  Located choose(const SignJob& job, const std::atomic<bool>* cancel);
  /// Before the user is asked anything: validity dates and key usage (throws CertNotYetValid,
  /// CertExpired, CertKeyUsage), then the chain to IT's trust anchors and revocation (OCSP, CRL)
  /// when anchors are configured, throwing the first problem under the refuse policy and
  /// logging it under warn.
  void check_certificate(const Credential& cred);
  /// The job's algorithm, or the key's default with `hash` (SHA-256 when none is fixed); it must
  /// use `hash` when one is fixed and be one the credential offers (BadRequest,
  /// AlgorithmUnsupported).
  static SignAlgorithm choose_algorithm(const SignJob& job, const Credential& cred,
                                        std::optional<HashAlgorithm> hash);
  /// The one approval dialog: what is signed, for whom, with which key, and the PIN prompt when
  /// the key wants one.
  Dialog approval_dialog(const SignJob& job, const Credential& cred,
                         const remote::AuthNeeds& needs) const;
  static Dialog otp_dialog(const SignJob& job, const Credential& cred);
  /// The PIN again before signature `n` (2nd and later) when the token's profile asks it for
  /// each signature (pin_per_signature).
  static Dialog pin_again_dialog(const SignJob& job, const Credential& cred, std::size_t n);
  /// The user's approval in the agent's dialog, with the PIN (and the OTP) when the signer wants
  /// them, then exactly one Signer::authorize for exactly `digests` (never retried). A refusal
  /// is audited and rethrown.
  void approve(const SignJob& job, const Credential& cred, Signer& signer,
               std::span<const Bytes> digests, const std::atomic<bool>& cancel);
  /// Records the user's approval of exactly `digests` (their concatenation's SHA-256), with
  /// how the signer authorizes beyond one login (Signer::authorization_note).
  void audit_approval(const SignJob& job, const Credential& cred, std::span<const Bytes> digests,
                      SignAlgorithm alg, std::string_view note);
  /// Records a job refused before its first signature (never throws).
  void audit_job_refusal(const SignJob& job, const Error& e,
                         const std::string& credential_id) noexcept;
  // Remote credentials (remote_source.cpp): sign in to the services not signed in (true when
  // one was), and the signer of a remote credential (its service signed in again if needed).
  bool sign_in_remote(const std::string& origin, Language lang, const std::atomic<bool>* cancel);
  std::shared_ptr<Signer> remote_signer(const Credential& cred, const std::string& origin,
                                        Language lang, const std::atomic<bool>* cancel);

  firmware_config::AgentConfig config_;
  std::vector<pkcs11::KnownToken> known_tokens_;
  std::unique_ptr<pkcs11::Library> library_;
  PairingStore pairings_;
  std::unique_ptr<AuditLog> audit_;
  Pinentry pinentry_;
  std::unique_ptr<RemoteSources> remote_;
  std::atomic<bool> busy_{false};
  std::atomic<bool> pairing_busy_{false};
  std::mutex cooldown_mutex_;
  struct PairCooldown {
    std::chrono::steady_clock::time_point until;  ///< pairs refused before this
    int strikes = 0;                              ///< unconfirmed dialogs in a row
  };
  std::map<std::string, PairCooldown> pair_cooldown_;  ///< by origin
};

}  // namespace kyso::agent
