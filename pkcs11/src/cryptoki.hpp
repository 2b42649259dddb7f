#pragma once
// The PKCS#11 types and function list, from p11-kit's pkcs11.h (a header only: on Windows
// p11-kit itself is not used). Every file of kyso::pkcs11 includes it through here, never
// directly. On Windows the PKCS#11 ABI packs its structures to 1 byte and CK_ULONG is 32 bits
// (unsigned long under LLP64): a module built for Windows (ePass2003, SafeNet, VGCA
// middleware) lays out CK_INFO, CK_TOKEN_INFO and the mechanism parameters that way.
// p11-kit's header does the packing itself when _WIN32 is defined (its
// `#pragma pack(push, cryptoki, 1)`); the assertion below keeps it so.

#include <p11-kit/pkcs11.h>

#if defined(_WIN32)
// 2 + 32 + 4 + 32 + 2 bytes, no padding: what Windows modules write into it.
static_assert(sizeof(CK_ULONG) == 4 && sizeof(CK_INFO) == 72,
              "PKCS#11 on Windows: 1-byte packing and a 32-bit CK_ULONG");
#endif
