#include "module.hpp"

namespace kyso::pkcs11::detail {

void throw_rv(CK_RV rv, std::string_view call, std::string_view where) {
  ErrorCode code = ErrorCode::TokenError;
  switch (rv) {
    case CKR_PIN_INCORRECT:
      code = ErrorCode::PinIncorrect;
      break;
    case CKR_PIN_LOCKED:
      code = ErrorCode::PinLocked;
      break;
    case CKR_PIN_EXPIRED:
      code = ErrorCode::PinMustChange;
      break;
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_INVALID:
      code = ErrorCode::PinInvalid;
      break;
    // A removed token shows up as any of these, depending on the module and the moment.
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_SLOT_ID_INVALID:
    case CKR_TOKEN_NOT_RECOGNIZED:
      code = ErrorCode::TokenRemoved;
      break;
    case CKR_USER_NOT_LOGGED_IN:
      code = ErrorCode::LoginRequired;
      break;
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_FUNCTION_NOT_SUPPORTED:
      code = ErrorCode::AlgorithmUnsupported;
      break;
    case CKR_DATA_LEN_RANGE:
    case CKR_DATA_INVALID:
      code = ErrorCode::DigestInvalid;
      break;
    case kRvUnresponsive:
      code = ErrorCode::TokenUnresponsive;
      break;
    case CKR_FUNCTION_CANCELED:
      code = ErrorCode::UserCancelled;  // the user pressed Cancel on a PIN pad
      break;
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
      code = ErrorCode::KeyNotFound;
      break;
    default:
      break;
  }
  std::string detail = std::string(call) + " returned " + rv_name(rv) + " in " + std::string(where);
  throw Error(code, std::move(detail), static_cast<unsigned long>(rv), std::string(call));
}

}  // namespace kyso::pkcs11::detail
