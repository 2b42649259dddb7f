#include "request.hpp"

#include <algorithm>

#include "kyso/agent/items.hpp"
#include "kyso/agent/pinentry.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

/// item.json's maxLength, in characters (code points) as JSON Schema counts them.
constexpr std::size_t kMaxTitleLength = 200;

/// Thrown from the parser's callback: stops parsing at the first container too deep.
struct TooDeep {};

/// The item's `title`: absent -> empty; longer than the schema allows -> refused (never cut:
/// the page would not know what the user saw); cleaned of what could fake the agent's lines.
std::string parse_title(const json& item) {
  const auto title = item.find("title");
  if (title == item.end()) return {};
  if (!title->is_string()) throw Error(ErrorCode::BadRequest, "item.title must be a string");
  const auto& t = title->get_ref<const std::string&>();
  if (utf8_length(t) > kMaxTitleLength) {
    throw Error(ErrorCode::BadRequest, "item.title has " + std::to_string(utf8_length(t)) +
                                           " characters; at most " +
                                           std::to_string(kMaxTitleLength));
  }
  return clean_dialog_text(t);
}

bool looks_hex(std::string_view s) {
  return !s.empty() && s.size() % 2 == 0 && std::ranges::all_of(s, [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

Bytes decode_digest(std::string_view s, std::size_t want) {
  // A hex string has exactly twice the digest's length; anything else is base64.
  if (s.size() == want * 2 && looks_hex(s)) return from_hex(s);
  std::string b64(s);
  std::ranges::replace(b64, '-', '+');
  std::ranges::replace(b64, '_', '/');
  while (b64.size() % 4 != 0) b64.push_back('=');
  return from_base64(b64);
}

}  // namespace

Request parse_request(std::string_view text, json& id) {
  Request r;
  // The depth is checked as each container opens, so a page's 400,000 nested arrays end at the
  // 65th; nothing later recurses over the request either (nlohmann's parser and destructor
  // do not).
  // The top level's "id" is kept as it goes by, so that even a refused message is answered
  // with its id.
  bool at_id = false;
  const json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json& parsed) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxDepth) {
      throw TooDeep{};
    }
    if (depth == 1 && event == json::parse_event_t::key) at_id = parsed == "id";
    if (depth == 1 && event == json::parse_event_t::value && at_id) {
      at_id = false;
      if ((parsed.is_string() && parsed.get_ref<const std::string&>().size() <= kMaxIdLength) ||
          parsed.is_number_integer()) {
        id = parsed;
      }
    }
    return true;
  };
  try {
    r.doc = json::parse(text, limit, false);
  } catch (const TooDeep&) {
    throw Error(ErrorCode::BadRequest,
                "the message nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  if (r.doc.is_discarded() || !r.doc.is_object()) {
    id = nullptr;  // not a request at all: no id to answer with
    throw Error(ErrorCode::BadRequest, r.doc.is_discarded() ? "not JSON" : "not a JSON object");
  }
  id = nullptr;
  if (const auto it = r.doc.find("id"); it != r.doc.end()) {
    if ((it->is_string() && it->get_ref<const std::string&>().size() <= kMaxIdLength) ||
        it->is_number_integer()) {
      id = *it;  // a string or an integer: nothing nested to copy
    }
  }
  if (id.is_null()) throw Error(ErrorCode::BadRequest, "id must be a string (<= 64) or integer");
  r.id = id;
  const auto m = r.doc.find("method");
  if (m == r.doc.end() || !m->is_string()) throw Error(ErrorCode::BadRequest, "method missing");
  r.method = m->get<std::string>();
  static const json kEmpty = json::object();
  const auto p = r.doc.find("params");
  r.params = p == r.doc.end() ? &kEmpty : &*p;
  if (!r.params->is_object()) throw Error(ErrorCode::BadRequest, "params must be an object");
  return r;
}

std::optional<std::string> optional_string(const json& params, const char* key) {
  const auto it = params.find(key);
  if (it == params.end()) return std::nullopt;
  if (!it->is_string()) throw Error(ErrorCode::BadRequest, std::string(key) + " must be a string");
  return it->get<std::string>();
}

Item parse_item(const json& j, Transfers* transfers) {
  if (!j.is_object()) throw Error(ErrorCode::BadRequest, "item must be an object");
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string())
    throw Error(ErrorCode::BadRequest, "item.type missing");
  const auto& t = type->get_ref<const std::string&>();
  if (t == "xml" || t == "pdf" || t == "cms") {
    Item item;
    item.type = t == "xml" ? ItemType::Xml : t == "pdf" ? ItemType::Pdf : ItemType::Cms;
    item.document = parse_document(item.type, j, transfers);
    item.digest = item.document->sha256;
    item.title = parse_title(j);
    return item;
  }
  if (t != "hash") throw Error(ErrorCode::BadRequest, "unknown item type '" + t + "'");
  Item item;
  const auto ha = j.find("hashAlgorithm");
  if (ha == j.end() || !ha->is_string()) {
    throw Error(ErrorCode::BadRequest, "item.hashAlgorithm missing");
  }
  const auto h = parse_hash_algorithm(ha->get<std::string>());
  if (!h) throw Error(ErrorCode::BadRequest, "unknown hashAlgorithm " + ha->get<std::string>());
  item.hash_algorithm = *h;
  const auto hash = j.find("hash");
  if (hash == j.end() || !hash->is_string())
    throw Error(ErrorCode::BadRequest, "item.hash missing");
  const auto want = digest_size(*h);
  if (hash->get_ref<const std::string&>().size() > want * 4) {
    throw Error(ErrorCode::DigestInvalid, "item.hash too long");
  }
  try {
    item.digest = decode_digest(hash->get_ref<const std::string&>(), want);
  } catch (const Error&) {
    throw Error(ErrorCode::DigestInvalid, "item.hash is neither hex nor base64");
  }
  if (item.digest.size() != want) {
    throw Error(ErrorCode::DigestInvalid, "item.hash has " + std::to_string(item.digest.size()) +
                                              " bytes, " + std::string(to_string(*h)) + " needs " +
                                              std::to_string(want));
  }
  item.title = parse_title(j);
  return item;
}

}  // namespace kyso::agent::protocol
