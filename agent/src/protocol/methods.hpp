#pragma once
// The methods of protocol v1, one family per file. Each family exports its table entries
// (dispatcher's Method: name, trust, in-flight slot, parser and handler in one place);
// connection.cpp puts the families together into the one table.

#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>

namespace kyso::agent::protocol {

class Connection;
using Id = nlohmann::json;

/// Who may call a method: any connection (hello, pair) or only an allow-listed or paired origin.
enum class Trust { Anyone, Trusted };

struct Method {
  std::string_view name;
  Trust trust = Trust::Trusted;
  /// Counts against the connection's max_in_flight (requests that wait for a dialog or a token).
  bool limited = false;
  /// Parses the params (throws Error(BadRequest) & co.) and handles the request; answers go out
  /// through the connection, now or later.
  std::function<void(Connection&, const Id&, const nlohmann::json& params)> run;
};

/// Builds a table entry from a parser `P parse(const json&, Connection&)` and a handler
/// `void handle(Connection&, const Id&, P)`.
template <typename Parse, typename Handle>
Method method(std::string_view name, Trust trust, bool limited, Parse parse, Handle handle) {
  return {name, trust, limited,
          [parse, handle](Connection& c, const Id& id, const nlohmann::json& params) {
            handle(c, id, parse(params, c));
          }};
}

std::span<const Method> hello_methods();        ///< hello, pair (hello.cpp)
std::span<const Method> credentials_methods();  ///< credentials.list (credentials.cpp)
std::span<const Method> signing_methods();      ///< sign, batch.sign, batch.items, batch.cancel
std::span<const Method> transfer_methods();     ///< upload.*, download.* (transfers.cpp)

}  // namespace kyso::agent::protocol
