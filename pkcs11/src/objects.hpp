#pragma once
// Reading token objects: the search loop and attribute reads shared by signing (token.cpp)
// and provisioning (admin.cpp), through the checked-call layer.

#include <span>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "module.hpp"

namespace kyso::pkcs11::detail {

/// One variable-length attribute (size query, then the value). A sensitive or absent attribute
/// is "no value" (empty), not a failure; other errors throw the mapped kyso::Error.
Bytes read_attribute(const Module& m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                     CK_ATTRIBUTE_TYPE type);

/// Every object matching `tmpl`; the search is always finalized, also on errors.
std::vector<CK_OBJECT_HANDLE> find_objects(const Module& m, CK_SESSION_HANDLE s,
                                           std::span<CK_ATTRIBUTE> tmpl);

}  // namespace kyso::pkcs11::detail
