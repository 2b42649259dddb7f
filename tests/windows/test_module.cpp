// A PKCS#11 module for the Windows tests (tests/windows): the least a module must do for
// Library to load it and read CK_INFO, built for Windows with the PKCS#11 ABI's 1-byte packing
// (pkcs11/src/cryptoki.hpp). Its fields sit where a Windows middleware's would: a layout
// mistake in our structures shows as a garbled manufacturer or description.
#include <cstring>

// This module exports the PKCS#11 entry point instead of importing it.
#define CRYPTOKI_EXPORTS
#include "cryptoki.hpp"

namespace {

void pad(unsigned char* field, std::size_t size, const char* text) {
  std::memset(field, ' ', size);
  std::memcpy(field, text, std::strlen(text));
}

CK_RV initialize(void* /*args*/) {
  return CKR_OK;
}
CK_RV finalize(void* /*reserved*/) {
  return CKR_OK;
}

CK_RV get_info(CK_INFO* info) {
  if (info == nullptr) return CKR_ARGUMENTS_BAD;
  info->cryptokiVersion = {2, 40};
  pad(info->manufacturerID, sizeof info->manufacturerID, "Kyso test module");
  info->flags = 0;
  // UTF-8, as PKCS#11 says: "thầy" in the description.
  pad(info->libraryDescription, sizeof info->libraryDescription, "Windows th\xe1\xba\xa7y 1-byte");
  info->libraryVersion = {1, 8};
  return CKR_OK;
}

CK_RV get_slot_list(unsigned char /*present*/, CK_SLOT_ID* /*list*/, CK_ULONG* count) {
  if (count == nullptr) return CKR_ARGUMENTS_BAD;
  *count = 0;
  return CKR_OK;
}

CK_FUNCTION_LIST functions = [] {
  CK_FUNCTION_LIST f{};
  f.version = {2, 40};
  f.C_Initialize = initialize;
  f.C_Finalize = finalize;
  f.C_GetInfo = get_info;
  f.C_GetSlotList = get_slot_list;
  return f;
}();

}  // namespace

extern "C" CK_RV C_GetFunctionList(CK_FUNCTION_LIST** list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  *list = &functions;
  return CKR_OK;
}
