#pragma once
// A protocol v1 request as it arrives: parsed with a nesting limit enforced while parsing (a
// page cannot make the agent recurse), its id checked, its params looked at in place (never
// copied). Item parsing (docs/protocol.md, "Items") lives here too.

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "kyso/agent/service.hpp"
#include "kyso/agent/uploads.hpp"

namespace kyso::agent::protocol {

/// Deepest nesting a request may have (objects and arrays); the deepest valid request is 4.
inline constexpr int kMaxDepth = 64;
inline constexpr std::size_t kMaxIdLength = 64;

/// A parsed request. `params` points into `doc` (an empty object when absent).
struct Request {
  nlohmann::json doc;
  nlohmann::json id;  ///< a string (<= 64) or an integer; null when missing or invalid
  std::string method;
  const nlohmann::json* params = nullptr;
};

/// Parses one message. Throws Error(BadRequest) for text that is not JSON, nests deeper than
/// kMaxDepth (refused while parsing, before the rest is read), is not an object, or lacks a
/// valid id, method or object params; `id` keeps the request's id when it was valid.
Request parse_request(std::string_view text, nlohmann::json& id);

/// Parses a protocol item. `transfers` resolves a document's `uploadId`. Throws
/// Error(BadRequest), Error(DigestInvalid) for a wrong digest length, Error(UploadNotFound) /
/// Error(DocumentTooLarge) for documents.
Item parse_item(const nlohmann::json& j, Transfers* transfers = nullptr);

/// A string member: absent -> nullopt; present but not a string -> Error(BadRequest).
std::optional<std::string> optional_string(const nlohmann::json& params, const char* key);

}  // namespace kyso::agent::protocol
