// kyso doctor: runs the check families in the order a person reads them.

#include "doctor.hpp"

namespace kyso::cli::doctor {

std::string_view to_string(Status s) noexcept {
  switch (s) {
    case Status::Ok:
      return "ok";
    case Status::Warn:
      return "warn";
    case Status::Fail:
      return "fail";
    case Status::Skip:
      break;
  }
  return "skip";
}

Checks run(pkcs11::Library& lib, const Options& o) {
  Checks checks;
  const auto profiles = o.profiles.empty() ? firmware_config::default_token_profiles()
                                           : firmware_config::load_token_profiles(o.profiles);
  const auto agent = check_config(checks, o);
  const std::uint16_t port = agent ? agent->port : firmware_config::kDefaultAgentPort;
  check_usb(checks, o, profiles);
  check_modules(checks, lib);
  check_tokens_and_certificates(checks, lib, o.expiry_days);
  check_local_tls(checks, o);
  check_browser_policy(checks, agent, o);
  check_agent_port(checks, port, agent && agent->tls);
  check_documents_module(checks, agent);
  check_tsa(checks, agent, o);
  check_remote(checks, agent, o);
  check_verifyd(checks, o);
  return checks;
}

}  // namespace kyso::cli::doctor
