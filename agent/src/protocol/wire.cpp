#include "wire.hpp"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>

namespace kyso::agent::protocol::wire {
namespace {

using json = nlohmann::json;

void append_uint(std::string& out, std::size_t v) {
  std::array<char, 24> buf{};
  const auto end = std::to_chars(buf.data(), buf.data() + buf.size(), v).ptr;
  out.append(buf.data(), end);
}

void append_base64(std::string& out, std::span<const std::uint8_t> data) {
  const std::size_t at = out.size();
  out.resize(at + 4 * ((data.size() + 2) / 3));
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at), data.data(),
                                static_cast<int>(data.size()));
  out.resize(at + static_cast<std::size_t>(n));
}

/// A JSON string value (quoted, escaped) of text that needs no escaping in practice (hex ids,
/// algorithm names); nlohmann's serializer makes sure of it.
void append_json_string(std::string& out, std::string_view s) {
  out += json(s).dump();
}

}  // namespace

json error_json(const Error& e) {
  json j = {
      {"code", std::string(e.name())},
      {"message",
       {{"vi", std::string(e.message(Language::Vi))},
        {"en", std::string(e.message(Language::En))}}},
      {"retriable", e.retriable()},
  };
  if (!e.detail().empty()) j["detail"] = e.detail();
  return j;
}

std::string result(const Id& id, const json& result) {
  return json{{"id", id}, {"result", result}}.dump();
}

std::string error(const Id& id, const Error& e) {
  if (e.code() == ErrorCode::Internal) spdlog::warn("request {}: {}", id.dump(), e.detail());
  return json{{"id", id}, {"error", error_json(e)}}.dump();
}

std::string event(std::string_view name, const Id& id, const json& params) {
  json e = {{"event", name}};
  if (!id.is_null()) e["id"] = id;
  e["params"] = params;
  return e.dump();
}

std::string refusal(const Error& e) {
  return json{{"error", error_json(e)}}.dump();
}

std::string status(bool tls) {
  return json{{"name", "kyso-agent"},
              {"version", std::string(kAgentVersion)},
              {"protocols", {kProtocolVersion}},
              {"tls", tls}}
      .dump();
}

json signer_fields(const SignOutcome& o) {
  json chain = json::array();
  for (const auto& c : o.credential.chain) chain.push_back(to_base64(c));
  return {{"credentialId", o.credential.id()},
          {"algorithm", std::string(to_string(o.algorithm))},
          {"certificate", to_base64(o.credential.cert.der)},
          {"chain", std::move(chain)}};
}

std::string sign_result(const Id& id, const SignOutcome& o, const std::string& hash_hex) {
  const auto& r = o.results.front();
  if (!r.ok()) return error(id, *r.error);
  json res = signer_fields(o);
  res["signature"] = to_base64(r.signature);
  res["hash"] = hash_hex;
  return json{{"id", id}, {"result", std::move(res)}}.dump();
}

std::string batch_summary(const Id& id, const SignOutcome& o, const std::vector<char>* sent) {
  std::size_t ok = 0;
  std::size_t sig_bytes = 0;
  for (const auto& r : o.results) {
    ok += r.ok() ? 1U : 0U;
    sig_bytes += r.signature.size();
  }
  std::string t;
  t.reserve(512 + 4 * (o.credential.cert.der.size() + sig_bytes) / 3 + 48 * o.results.size());
  t += R"({"id":)";
  t += id.dump();
  t += R"(,"result":{"total":)";
  append_uint(t, o.results.size());
  t += R"(,"signed":)";
  append_uint(t, ok);
  t += R"(,"failed":)";
  append_uint(t, o.results.size() - ok);
  t += o.cancelled ? R"(,"cancelled":true)" : R"(,"cancelled":false)";
  t += R"(,"credentialId":)";
  append_json_string(t, o.credential.id());
  t += R"(,"algorithm":)";
  append_json_string(t, to_string(o.algorithm));
  t += R"(,"certificate":")";
  append_base64(t, o.credential.cert.der);
  t += R"(","chain":[)";
  for (std::size_t i = 0; i < o.credential.chain.size(); ++i) {
    t += i == 0 ? "\"" : ",\"";
    append_base64(t, o.credential.chain[i]);
    t += '"';
  }
  t += R"(],"results":[)";
  for (std::size_t i = 0; i < o.results.size(); ++i) {
    const auto& r = o.results[i];
    t += i == 0 ? R"({"index":)" : R"(,{"index":)";
    append_uint(t, i);
    if (r.ok() && sent != nullptr && (*sent)[i] != 0) {
      t += R"(,"ok":true})";
    } else if (r.ok()) {
      t += R"(,"ok":true,"signature":")";
      append_base64(t, r.signature);
      t += "\"}";
    } else {
      t += R"(,"ok":false,"error":)";
      t += error_json(*r.error).dump();
      t += '}';
    }
  }
  t += "]}}";
  return t;
}

std::string documents_result(const Id& id, const SignOutcome& o, bool batch, Transfers& transfers) {
  std::size_t budget = transfers.limits().inline_answer_bytes;
  json common = signer_fields(o);
  if (!batch) {
    json res = output_json(*o.documents.front(), transfers, budget);
    res.update(common);
    return result(id, res);
  }
  json results = json::array();
  std::size_t ok = 0;
  for (std::size_t i = 0; i < o.results.size(); ++i) {
    const auto& r = o.results[i];
    if (r.ok()) {
      ++ok;
      json e = output_json(*o.documents[i], transfers, budget);
      e["index"] = i;
      e["ok"] = true;
      results.push_back(std::move(e));
    } else {
      results.push_back({{"index", i}, {"ok", false}, {"error", error_json(*r.error)}});
    }
  }
  common.update(json{{"total", o.results.size()},
                     {"signed", ok},
                     {"failed", o.results.size() - ok},
                     {"cancelled", o.cancelled},
                     {"results", std::move(results)}});
  return result(id, common);
}

json credentials(const CredentialList& list) {
  json arr = json::array();
  for (const auto& l : list.credentials) {
    json j = l.credential;
    json roles = json::array();
    for (const auto r : l.roles) roles.push_back(std::string(to_string(r)));
    j["roles"] = std::move(roles);
    j["suggestedRole"] = l.suggested ? json(std::string(to_string(*l.suggested))) : json(nullptr);
    arr.push_back(std::move(j));
  }
  json result = {{"credentials", std::move(arr)}};
  if (!list.remote_services.is_null()) result["remoteServices"] = list.remote_services;
  return result;
}

ProgressEvents::ProgressEvents(const Id& id, std::size_t total, ProgressOptions options)
    : id_(id.dump()), total_(total), options_(options), sent_(options.signatures ? total : 0, 0) {}

std::string ProgressEvents::head(std::size_t index, bool ok) const {
  std::string text;
  text.reserve(160);
  text += R"({"event":"batch.progress","id":)";
  text += id_;
  text += R"(,"params":{"done":)";
  append_uint(text, done_);
  text += R"(,"total":)";
  append_uint(text, total_);
  text += R"(,"index":)";
  append_uint(text, index);
  text += ok ? R"(,"ok":true)" : R"(,"ok":false)";
  return text;
}

std::string ProgressEvents::add(std::size_t index, const SignResult& r) {
  ++done_;
  const bool last = done_ == total_;
  if (options_.interval.count() > 0) {
    if (!r.ok()) {
      failed_ += failed_.empty() ? "[" : ",";
      failed_ += "{\"index\":";
      append_uint(failed_, index);
      failed_ += ",\"error\":";
      failed_ += error_json(*r.error).dump();
      failed_ += '}';
    } else if (options_.signatures && !r.signature.empty()) {
      sent_[index] = 1;
      signed_ += signed_.empty() ? "[{\"index\":" : ",{\"index\":";
      append_uint(signed_, index);
      signed_ += ",\"signature\":\"";
      append_base64(signed_, r.signature);
      signed_ += "\"}";
    }
    // The first item at once (the page sees the signing start), then by time, and the last.
    const auto now = std::chrono::steady_clock::now();
    if (done_ != 1 && !last && now - sent_at_ < options_.interval) return {};
    sent_at_ = now;
    std::string text = head(index, r.ok());
    text += ",\"from\":";
    append_uint(text, from_);
    text += ",\"failed\":";
    text += failed_.empty() ? "[]" : failed_ + "]";
    if (options_.signatures) {
      text += ",\"signatures\":";
      text += signed_.empty() ? "[]" : signed_ + "]";
      signed_.clear();
    }
    text += "}}";
    failed_.clear();
    from_ = done_;
    return text;
  }
  // With progressEvery k: the first item (the page sees the signing start), every k-th item,
  // every failed item and the last one.
  if (options_.every > 1 && r.ok() && done_ != 1 && done_ % options_.every != 0 && !last) {
    return {};
  }
  std::string text = head(index, r.ok());
  if (!r.ok()) {
    text += ",\"error\":";
    text += error_json(*r.error).dump();
  }
  text += "}}";
  return text;
}

}  // namespace kyso::agent::protocol::wire
