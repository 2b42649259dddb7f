#pragma once
/// @file
/// The agent's configuration (kyso-agent.toml, see docs/configuration.md). Loaded and validated
/// by kyso::firmware_config::load_agent_config(); every mistake is reported with file, line and
/// key.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "kyso/core/roles.hpp"

namespace kyso::firmware_config {

/// The agent's default port: unused by the Vietnamese plugins users already run
/// (VGCA 8987, VNPT 4433, BkavCA 8443, Viettel 14007, FPT 14408). Fallbacks follow it.
inline constexpr std::uint16_t kDefaultAgentPort = 19587;
inline constexpr std::uint16_t kAgentPortFallbacks = 2;  // 19588, 19589

/// A remote signing service (CSC v2) the agent offers next to tokens.
struct RemoteService {
  std::string name;      ///< shown to the user, e.g. "Sở GD&ĐT - máy ký"
  std::string url;       ///< CSC base URL, e.g. https://sign.example.vn/csc/v2
  std::string username;  ///< login name at the service (the password/PIN is asked, never stored)
  std::string ca_file;   ///< extra trust anchor for the service's TLS certificate (optional)
  /// How long a signature request keeps being re-sent while the service answers "temporarily
  /// unavailable" (503) or cannot be reached: a node dying or the state database restarting
  /// behind a balancer. The re-sent request carries the same request id, so it can only take
  /// its own approved hashes again. 0: give up after the immediate re-sends.
  std::chrono::seconds unavailable_wait{30};
};

struct AgentLimits {
  std::size_t max_connections = 16;
  std::size_t max_message_bytes = 64UL * 1024 * 1024;  ///< one WebSocket message (PDF chunks)
  std::size_t max_frame_bytes = 1024UL * 1024;
  std::size_t max_in_flight = 8;  ///< requests per connection
  std::size_t max_batch_items = 5000;
  std::size_t write_queue = 256;  ///< queued outgoing messages before reading pauses
  std::chrono::seconds idle_timeout{300};
  std::chrono::seconds approval_timeout{120};
};

struct AgentConfig {
  std::uint16_t port = kDefaultAgentPort;
  bool tls = false;  ///< wss with the local CA's certificate (installer/)
  std::string tls_cert_file;
  std::string tls_key_file;
  std::vector<std::string> allowed_origins;  ///< IT's allow-list: "https://hocba.example.edu.vn"
  std::map<Role, RolePin> roles;             ///< IT's pins per role
  std::vector<std::string> trust_anchors;    ///< CA certificate files for chain checks
  std::string tsa_url;                       ///< RFC 3161 TSA for -T signatures
  bool revocation_check = true;              ///< OCSP, then CRL, before signing
  bool refuse_on_check_failure = true;       ///< policy: refuse (default) or warn
  std::string pinentry = "pinentry";         ///< GnuPG pinentry program (PATH or absolute)
  std::vector<std::string> pkcs11_modules;   ///< extra module paths
  bool system_modules = true;                ///< also p11-kit's and the known-token table's
  std::string token_profiles;  ///< tokens.toml replacing the built-in table (optional)
  /// [pkcs11] call_timeout_seconds / sign_timeout_seconds: how long a module call may take
  /// before the agent gives up on it (TOKEN_UNRESPONSIVE); 0: the token layer's defaults.
  std::chrono::seconds pkcs11_call_timeout{0};
  std::chrono::seconds pkcs11_sign_timeout{0};
  std::vector<RemoteService> remote;
  std::filesystem::path state_dir;  ///< pairings and audit log; default ~/.local/share/kyso
  std::string language = "vi";
  /// kyso-formats-documents.so (xml and pdf items); empty: $KYSO_FORMATS_MODULE, else next to
  /// the program, else the installed libdir/kyso (kyso/formats/documents.hpp)
  std::string formats_module;
  /// [revocation] ocsp_url: asked instead of every certificate's AIA OCSP responder (a local
  /// proxy), by the checks before signing and for the validation data of B-LT/B-LTA items.
  /// Empty: each certificate's own responder.
  std::string ocsp_url;
  AgentLimits limits;
};

/// Loads and validates a TOML file. Throws Error(ConfigInvalid) whose detail reads
/// "<file>:<line>:<column>: <key>: <what is wrong>".
AgentConfig load_agent_config(const std::filesystem::path& file);

}  // namespace kyso::firmware_config
