#include "kyso/core/roles.hpp"

#include <algorithm>
#include <array>

namespace kyso {

std::string_view to_string(Role role) noexcept {
  switch (role) {
    case Role::Teacher:
      return "teacher";
    case Role::Principal:
      return "principal";
    case Role::Seal:
      return "seal";
  }
  return "teacher";
}

std::optional<Role> parse_role(std::string_view name) noexcept {
  for (auto r : {Role::Teacher, Role::Principal, Role::Seal}) {
    if (to_string(r) == name) return r;
  }
  return std::nullopt;
}

std::string_view role_label(Role role, Language lang) noexcept {
  const bool vi = lang == Language::Vi;
  switch (role) {
    case Role::Teacher:
      return vi ? "Giáo viên chủ nhiệm" : "Homeroom teacher";
    case Role::Principal:
      return vi ? "Hiệu trưởng" : "Principal";
    case Role::Seal:
      return vi ? "Con dấu nhà trường" : "School seal";
  }
  return "";
}

bool role_accepts(Role role, const CertificateInfo& cert, const RolePin* pin) {
  const bool kind_ok = role == Role::Seal ? cert.kind == SubjectKind::Organization
                                          : cert.kind == SubjectKind::Person;
  if (!kind_ok) return false;
  if (pin == nullptr) return true;
  if (!pin->credential_ids.empty() &&
      std::ranges::find(pin->credential_ids, cert.id) == pin->credential_ids.end()) {
    return false;
  }
  if (!pin->issuer_contains.empty() &&
      std::ranges::none_of(pin->issuer_contains, [&](const std::string& s) {
        return cert.issuer.find(s) != std::string::npos;
      })) {
    return false;
  }
  return true;
}

std::optional<Role> guess_role(const CertificateInfo& cert) {
  if (cert.kind == SubjectKind::Organization) return Role::Seal;
  if (cert.kind != SubjectKind::Person) return std::nullopt;
  // Titles as Vietnamese CAs write them, with and without diacritics.
  static constexpr std::array<std::string_view, 6> kPrincipal{
      "Hiệu trưởng", "HIỆU TRƯỞNG", "Hieu truong", "Phó hiệu trưởng", "Principal", "Giám đốc"};
  for (auto t : kPrincipal) {
    if (cert.title.find(t) != std::string::npos) return Role::Principal;
  }
  return Role::Teacher;
}

}  // namespace kyso
