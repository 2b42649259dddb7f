// hello and pair: what any connection may ask before it is trusted.

#include <algorithm>

#include "connection.hpp"
#include "kyso/agent/pairing.hpp"
#include "methods.hpp"
#include "request.hpp"
#include "wire.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

struct Hello {
  std::optional<Language> language;
};

Hello parse_hello(const json& p, Connection& /*c*/) {
  Hello h;
  if (const auto l = p.find("language"); l != p.end() && l->is_string()) {
    h.language = parse_language(l->get<std::string>());
  }
  if (const auto v = p.find("protocols"); v != p.end()) {
    if (!v->is_array() || std::ranges::none_of(*v, [](const json& x) {
          return x.is_number_integer() && x.get<int>() == kProtocolVersion;
        })) {
      throw Error(ErrorCode::NotSupported, "this agent speaks protocol 1 only");
    }
  }
  return h;
}

json capabilities(const Service& svc) {
  const auto& lim = svc.config().limits;
  const bool tsa = !svc.config().tsa_url.empty();
  // B-LT and B-LTA archive the chains to IT's anchors, timestamped by the TSA: both needed.
  const bool lt = tsa && !svc.config().trust_anchors.empty();
  const auto levels = [&](const char* prefix) {
    json l = json::array();
    for (const char* v : {"b-b", "b-t", "b-lt", "b-lta"}) {
      const std::string_view s(v);
      if ((s == "b-t" && !tsa) || (s.starts_with("b-lt") && !lt)) continue;
      l.push_back(std::string(prefix) + v);
    }
    return l;
  };
  const TransferLimits tl;
  return {
      {"itemTypes", {"hash", "xml", "pdf", "cms"}},
      {"documents",
       {{"xml",
         {{"profiles",
           [&] {
             json p = levels("xades-");
             p.insert(p.begin(), "xmldsig");
             return p;
           }()}}},
        {"pdf", {{"levels", levels("")}}},
        {"cms", {{"levels", levels("")}}},
        {"timestamps", tsa},
        {"certificateChecks", !svc.config().trust_anchors.empty()},
        {"uploads",
         {{"chunkBytes", tl.max_chunk_bytes},
          {"maxDocumentBytes", tl.max_document_bytes},
          {"maxConnectionBytes", tl.max_connection_bytes},
          {"inlineResultBytes", tl.inline_result_bytes}}}}},
      {"hashAlgorithms", {"sha256", "sha384", "sha512"}},
      {"algorithms",
       {"rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-pss-sha256", "rsa-pss-sha384",
        "rsa-pss-sha512", "ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512"}},
      {"roles", {"teacher", "principal", "seal"}},
      {"batch", true},
      {"maxBatchItems", lim.max_batch_items},
      {"maxInFlight", lim.max_in_flight},
      {"progressInterval", true},
      {"signaturesInEvents", true},
      {"remote", false},
  };
}

void hello(Connection& c, const Id& id, Hello h) {
  if (h.language) c.set_language(*h.language);
  const auto& svc = c.service();
  c.respond(id, {{"agent", "kyso-agent"},
                 {"version", std::string(kAgentVersion)},
                 {"protocol", kProtocolVersion},
                 {"protocols", {kProtocolVersion}},
                 {"origin", c.origin()},
                 {"paired", svc.trusted(c.origin())},
                 {"allowListed", svc.allow_listed(c.origin())},
                 {"capabilities", capabilities(svc)}});
}

struct Nothing {};
Nothing parse_nothing(const json& /*p*/, Connection& /*c*/) {
  return {};
}

void pair_origin(Connection& c, const Id& id, Nothing /*unused*/) {
  if (c.service().trusted(c.origin()))
    return c.respond(id, {{"paired", true}, {"origin", c.origin()}});
  if (!origin_pairable(c.origin())) {
    throw Error(ErrorCode::OriginForbidden, "origin " + c.origin() + " cannot be paired");
  }
  // The code goes to the page (pair.code) once the desk holds the one dialog slot.
  auto* conn = &c;
  const auto expires = c.limits().approval_timeout.count();
  c.run<bool>(
      [svc = &c.service(), origin = c.origin(), lang = c.language(), id, conn,
       expires](const std::atomic<bool>& cancel) {
        svc->pair(origin, lang, &cancel, [&](const std::string& code) {
          conn->send(wire::event("pair.code", id, {{"code", code}, {"expiresIn", expires}}));
        });
        return true;
      },
      [id](Connection& self, std::optional<bool> /*ok*/, std::optional<Error> err) {
        if (err) return self.fail(id, *err);
        self.respond(id, {{"paired", true}, {"origin", self.origin()}});
      });
}

const std::vector<Method> kMethods = {
    method("hello", Trust::Anyone, false, parse_hello, hello),
    method("pair", Trust::Anyone, true, parse_nothing, pair_origin),
};

}  // namespace

std::span<const Method> hello_methods() {
  return kMethods;
}

}  // namespace kyso::agent::protocol
