#include "objects.hpp"

#include <array>

namespace kyso::pkcs11::detail {

Bytes read_attribute(const Module& m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                     CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr{type, nullptr, 0};
  const CK_RV rv = m.invoke<&CK_FUNCTION_LIST::C_GetAttributeValue>(s, o, &attr, 1UL);
  // Sensitive or absent attributes are "no value", not failures.
  if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
      attr.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
    return {};
  }
  if (rv != CKR_OK) throw_rv(rv, "C_GetAttributeValue", __func__);
  Bytes value(attr.ulValueLen);
  attr.pValue = value.data();
  KYSO_CK(m, C_GetAttributeValue, s, o, &attr, 1UL);
  value.resize(attr.ulValueLen);
  return value;
}

std::vector<CK_OBJECT_HANDLE> find_objects(const Module& m, CK_SESSION_HANDLE s,
                                           std::span<CK_ATTRIBUTE> tmpl) {
  KYSO_CK(m, C_FindObjectsInit, s, tmpl.data(), static_cast<CK_ULONG>(tmpl.size()));
  std::vector<CK_OBJECT_HANDLE> out;
  std::array<CK_OBJECT_HANDLE, 32> batch{};
  for (;;) {
    CK_ULONG n = 0;
    const CK_RV rv =
        m.invoke<&CK_FUNCTION_LIST::C_FindObjects>(s, batch.data(), CK_ULONG{batch.size()}, &n);
    if (rv != CKR_OK) {
      (void)m.invoke<&CK_FUNCTION_LIST::C_FindObjectsFinal>(s);
      throw_rv(rv, "C_FindObjects", __func__);
    }
    if (n == 0) break;
    out.insert(out.end(), batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(n));
  }
  KYSO_CK(m, C_FindObjectsFinal, s);
  return out;
}

}  // namespace kyso::pkcs11::detail
