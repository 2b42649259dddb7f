#pragma once
// The one place that writes protocol v1's JSON (docs/protocol.md): answers, errors, events,
// a batch's progress and summary. The batch's hot path (events, the summary of 2,000
// signatures) is built as text, one growing string per message instead of a tree per item.

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/agent/items.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/agent/uploads.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::agent::protocol::wire {

using Id = nlohmann::json;

/// An error's wire form: {"code", "message": {"vi", "en"}, "retriable", "detail"?}.
nlohmann::json error_json(const Error& e);
/// {"id", "result"}.
std::string result(const Id& id, const nlohmann::json& result);
/// {"id", "error": error_json(e)}; an Internal error is logged with its detail.
std::string error(const Id& id, const Error& e);
/// {"event", "id"?, "params"}.
std::string event(std::string_view name, const Id& id, const nlohmann::json& params);
/// The body of a refused HTTP request: {"error": error_json(e)}.
std::string refusal(const Error& e);
/// `GET /`: name, version, protocols, tls.
std::string status(bool tls);

/// The answer to `sign` on a hash item.
std::string sign_result(const Id& id, const SignOutcome& o, const std::string& hash_hex);
/// A batch's summary, one entry per item in order. An item whose signature already went out
/// in an event (`sent`, signaturesInEvents) says only ok.
std::string batch_summary(const Id& id, const SignOutcome& o, const std::vector<char>* sent);
/// The answer to a `sign` or `batch.sign` of documents: each signed document inline while the
/// answer has room, else as a download through `transfers`.
std::string documents_result(const Id& id, const SignOutcome& o, bool batch, Transfers& transfers);
/// credentials.list's result.
nlohmann::json credentials(const CredentialList& list);
/// credentialId, algorithm, certificate, chain: what every signing answer carries.
nlohmann::json signer_fields(const SignOutcome& o);

/// How a batch reports progress (batch.sign's progressEvery / progressInterval /
/// signaturesInEvents).
struct ProgressOptions {
  std::size_t every = 1;
  std::chrono::milliseconds interval{0};  ///< coalesced when > 0
  bool signatures = false;
};

/// batch.progress events, built in item order on the job's reporting thread, after each item's
/// audit row is committed. Per item, every k-th item (progressEvery), or coalesced: at most one
/// event every progressInterval, carrying every item finished since the last one.
class ProgressEvents {
 public:
  ProgressEvents(const Id& id, std::size_t total, ProgressOptions options);

  /// The event to send for item `index`'s result, or empty when it waits for a later one.
  std::string add(std::size_t index, const SignResult& r);
  /// With signaturesInEvents: which items' signatures went out in an event (a remote
  /// credential reports results without them; the summary carries those).
  [[nodiscard]] const std::vector<char>* sent() const {
    return options_.signatures ? &sent_ : nullptr;
  }

 private:
  [[nodiscard]] std::string head(std::size_t index, bool ok) const;

  std::string id_;
  std::size_t total_;
  ProgressOptions options_;
  std::vector<char> sent_;
  std::size_t done_ = 0;
  std::size_t from_ = 0;
  std::string failed_;
  std::string signed_;  ///< with signaturesInEvents: the covered items' signatures
  std::chrono::steady_clock::time_point sent_at_{};
};

}  // namespace kyso::agent::protocol::wire
