// credentials.list: the credentials present for a role, and the remote services.

#include "connection.hpp"
#include "methods.hpp"
#include "wire.hpp"

namespace kyso::agent::protocol {
namespace {

using json = nlohmann::json;

CredentialQuery parse_list(const json& p, Connection& /*c*/) {
  CredentialQuery q;
  if (const auto r = p.find("role"); r != p.end()) {
    if (!r->is_string() || !(q.role = parse_role(r->get<std::string>()))) {
      throw Error(ErrorCode::BadRequest, "role must be teacher, principal or seal");
    }
  }
  if (const auto k = p.find("kind"); k != p.end()) {
    if (*k == "person")
      q.kind = SubjectKind::Person;
    else if (*k == "organization")
      q.kind = SubjectKind::Organization;
    else
      throw Error(ErrorCode::BadRequest, "kind must be person or organization");
  }
  if (const auto v = p.find("validNow"); v != p.end()) {
    if (!v->is_boolean()) throw Error(ErrorCode::BadRequest, "validNow must be a boolean");
    q.valid_now = v->get<bool>();
  }
  if (const auto si = p.find("signIn"); si != p.end()) {
    if (!si->is_boolean()) throw Error(ErrorCode::BadRequest, "signIn must be a boolean");
    q.sign_in = si->get<bool>();
  }
  return q;
}

void list(Connection& c, const Id& id, CredentialQuery q) {
  c.run<CredentialList>(
      [svc = &c.service(), q, origin = c.origin(),
       lang = c.language()](const std::atomic<bool>& cancel) {
        return svc->list_credentials(q, origin, lang, &cancel);
      },
      [id](Connection& self, std::optional<CredentialList> r, std::optional<Error> err) {
        if (err) return self.fail(id, *err);
        self.send(wire::result(id, wire::credentials(*r)));
      });
}

const std::vector<Method> kMethods = {
    method("credentials.list", Trust::Trusted, true, parse_list, list),
};

}  // namespace

std::span<const Method> credentials_methods() {
  return kMethods;
}

}  // namespace kyso::agent::protocol
