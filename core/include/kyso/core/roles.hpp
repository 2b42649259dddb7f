#pragma once
/// @file
/// The three signing roles of a transcript and which certificates may fill them:
/// `teacher` and `principal` need a person's certificate, `seal` an organization's. IT may pin a
/// role further to given credentials or issuers.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso {

enum class Role { Teacher, Principal, Seal };

std::string_view to_string(Role role) noexcept;  ///< "teacher", "principal", "seal"
std::optional<Role> parse_role(std::string_view name) noexcept;
/// "Giáo viên chủ nhiệm" / "Homeroom teacher", ...
std::string_view role_label(Role role, Language lang) noexcept;

/// IT's pins for one role (from the agent's configuration). Empty lists pin nothing.
struct RolePin {
  std::vector<std::string> credential_ids;   ///< allowed credential ids (certificate SHA-256)
  std::vector<std::string> issuer_contains;  ///< allowed issuers: substrings of the issuer DN
};

/// Whether `cert` may sign as `role`: kind first (person / organization), then IT's pins.
bool role_accepts(Role role, const CertificateInfo& cert, const RolePin* pin = nullptr);

/// The role a certificate most likely serves, from its kind and title ("Hiệu trưởng" ->
/// principal). Used to order credential lists and to label signatures in `kyso verify`.
std::optional<Role> guess_role(const CertificateInfo& cert);

}  // namespace kyso
