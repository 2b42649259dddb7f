// The appliance's CSC v2 handling (remote-sign/appliance/src/service.cpp, Service::handle): one
// HTTP request as the server hands it over after Beast parsed it. The input's first line is the
// target (a leading "GET " makes it a GET, else POST), the second the Authorization header, the
// third the Content-Type, the rest the body. "$T" in the Authorization line is a valid bearer
// token of the configured user (got once by auth/login), "$B" that user's valid Basic
// credentials. The appliance has a user, an OAuth client, SQLite state in memory and no HSM
// token, so every endpoint's JSON is parsed and checked up to the credential lookup.
//
// Checked besides the sanitizers: every answer is a JSON object (or empty for 204) with a status
// the CSC API knows.

#include <boost/asio/thread_pool.hpp>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "kyso/appliance/security.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/pkcs11/library.hpp"
#include "service.hpp"

namespace {

using json = nlohmann::json;

struct Appliance {
  Appliance() {
    const kyso::Secret password = secret("mat-khau-dung");
    config.state_db = ":memory:";
    config.limits.max_failures = 1U << 30;  // the fuzzer guesses wrong all day: never lock
    config.limits.token_ttl = std::chrono::hours(24 * 365);
    config.users.push_back({.name = "gv.an",
                            .password_hash = kyso::appliance::hash_password(password, 10),
                            .totp_secret = "JBSWY3DPEHPK3PXP",
                            .credentials = {}});
    config.clients.push_back({.client_id = "truong-thpt",
                              .secret_hash = kyso::appliance::hash_password(password, 10),
                              .user = "gv.an"});
    store = kyso::appliance::open_state_store(config.state_db);
    library = std::make_unique<kyso::pkcs11::Library>(
        kyso::pkcs11::ModuleConfig{.paths = {}, .use_p11kit = false, .use_known = false});
    service = std::make_unique<kyso::appliance::Service>(config, *store, *library, pool);
    const std::string creds = "gv.an:mat-khau-dung";
    basic = "Basic " + kyso::to_base64(std::span(
                           reinterpret_cast<const std::uint8_t*>(creds.data()), creds.size()));
    kyso::appliance::HttpRequest login{.method = "POST",
                                       .target = "/csc/v2/auth/login",
                                       .authorization = basic,
                                       .content_type = "application/json",
                                       .request_id = "fuzz",
                                       .body = "{}"};
    const auto r = service->handle(login);
    bearer = "Bearer " + json::parse(r.body).at("access_token").get<std::string>();
  }
  static kyso::Secret secret(std::string_view s) {
    kyso::Secret out(64);
    out.assign(s);
    return out;
  }
  kyso::firmware_config::ApplianceConfig config;
  std::unique_ptr<kyso::appliance::StateStore> store;
  std::unique_ptr<kyso::pkcs11::Library> library;
  boost::asio::thread_pool pool{1};
  std::unique_ptr<kyso::appliance::Service> service;
  std::string basic;
  std::string bearer;
};

Appliance& appliance() {
  static Appliance* a = new Appliance();
  return *a;
}

std::string_view next_line(std::string_view& in) {
  const auto nl = in.find('\n');
  const std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return line;
}

void replace_all(std::string& s, std::string_view from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Appliance& a = appliance();
  std::string_view in = kyso::fuzz::as_text(data, size);
  kyso::appliance::HttpRequest req;
  req.method = "POST";
  std::string_view target = next_line(in);
  if (target.starts_with("GET ")) {
    req.method = "GET";
    target.remove_prefix(4);
  }
  req.target = std::string(target);
  req.authorization = std::string(next_line(in));
  replace_all(req.authorization, "$T", a.bearer);
  replace_all(req.authorization, "$B", a.basic);
  req.content_type = std::string(next_line(in));
  req.request_id = "fuzz";
  req.body = std::string(in);
  const auto r = a.service->handle(req);
  const bool known = r.status == 200 || r.status == 204 || r.status == 400 || r.status == 401 ||
                     r.status == 403 || r.status == 404 || r.status == 405 || r.status == 413 ||
                     r.status == 429 || r.status == 500 || r.status == 503;
  const json body = r.body.empty() ? json::object() : json::parse(r.body, nullptr, false);
  if (!known || body.is_discarded() || !body.is_object()) {
    std::fprintf(stderr, "csc_request: status %u, body %s\n", r.status,
                 r.body.substr(0, 200).c_str());
    std::abort();
  }
  return 0;
}
