#include "kyso/core/error.hpp"

#include <array>

namespace kyso {
namespace {

struct Entry {
  ErrorCode code;
  std::string_view name;
  bool retriable;
  std::string_view vi;
  std::string_view en;
};

// The single table that turns codes into wire names and messages. Messages say what to do.
constexpr std::array kEntries{
    Entry{ErrorCode::BadRequest, "BAD_REQUEST", false,
          "Yêu cầu không hợp lệ. Hãy báo cho bộ phận phát triển phần mềm học bạ.",
          "The request is malformed. Report it to the transcript system's developers."},
    Entry{ErrorCode::NotSupported, "NOT_SUPPORTED", false, "Chức năng này chưa được hỗ trợ.",
          "This function is not supported."},
    Entry{ErrorCode::ConfigInvalid, "CONFIG_INVALID", false,
          "Tệp cấu hình có lỗi. Hãy nhờ cán bộ CNTT kiểm tra theo thông báo chi tiết.",
          "The configuration has an error. Ask IT to fix it using the detailed message."},
    Entry{ErrorCode::Internal, "INTERNAL", false,
          "Lỗi nội bộ của Kyso. Hãy gửi nhật ký cho cán bộ CNTT.",
          "Internal Kyso error. Send the log to IT support."},
    Entry{ErrorCode::ModuleLoadFailed, "MODULE_LOAD_FAILED", false,
          "Không nạp được thư viện PKCS#11 của token. Hãy cài lại phần mềm điều khiển token.",
          "The token's PKCS#11 library could not be loaded. Reinstall the token's driver."},
    Entry{ErrorCode::ModuleNotInstalled, "MODULE_NOT_INSTALLED", true,
          "Đã thấy token nhưng chưa cài phần mềm điều khiển (PKCS#11) cho nó. Hãy cài gói được "
          "gợi ý rồi thử lại.",
          "The token is plugged in but its PKCS#11 driver is not installed. Install the suggested "
          "package and try again."},
    Entry{ErrorCode::TokenNotFound, "TOKEN_NOT_FOUND", true,
          "Không tìm thấy token. Hãy cắm token USB vào máy rồi thử lại.",
          "No token found. Plug in the USB token and try again."},
    Entry{ErrorCode::TokenRemoved, "TOKEN_REMOVED", true,
          "Token đã bị rút ra trong khi ký. Hãy cắm lại token và ký lại các văn bản chưa ký.",
          "The token was removed while signing. Plug it back in and sign the remaining "
          "documents."},
    Entry{ErrorCode::TokenUnresponsive, "TOKEN_UNRESPONSIVE", true,
          "Token hoặc phần mềm điều khiển token không phản hồi (thường do token bị rút ra khi "
          "đang ký). Hãy rút token ra, cắm lại rồi ký lại các văn bản chưa ký.",
          "The token or its driver stopped answering (usually because it was pulled out while "
          "signing). Unplug it, plug it back in and sign the remaining documents."},
    Entry{ErrorCode::TokenError, "TOKEN_ERROR", true,
          "Token báo lỗi. Hãy rút token ra, cắm lại rồi thử lại; nếu vẫn lỗi, liên hệ cán bộ CNTT.",
          "The token reported an error. Unplug it, plug it back in and retry; if it persists, "
          "contact IT."},
    Entry{ErrorCode::LoginRequired, "LOGIN_REQUIRED", true,
          "Cần nhập mã PIN của token trước khi ký.", "Enter the token's PIN before signing."},
    Entry{ErrorCode::PinIncorrect, "PIN_INCORRECT", true,
          "Mã PIN không đúng. Hãy kiểm tra kỹ trước khi nhập lại: token sẽ bị khóa sau vài lần "
          "sai.",
          "Wrong PIN. Check it carefully before trying again: the token locks after a few wrong "
          "tries."},
    Entry{ErrorCode::PinRepeated, "PIN_REPEATED", true,
          "Mã PIN này vừa bị token từ chối nên Kyso không gửi lại để tránh khóa token. Hãy nhập "
          "đúng mã PIN.",
          "This PIN was just rejected by the token, so Kyso will not send it again (the token "
          "would lock). Enter the correct PIN."},
    Entry{ErrorCode::PinLocked, "PIN_LOCKED", false,
          "Mã PIN của token đã bị khóa. Hãy mang token đến cán bộ CNTT hoặc nhà cung cấp chứng "
          "thư số để mở khóa.",
          "The token's PIN is locked. Take the token to IT or your certificate provider to "
          "unblock it."},
    Entry{ErrorCode::PinFinalTry, "PIN_FINAL_TRY", false,
          "Token chỉ còn một lần nhập PIN trước khi bị khóa. Kyso dừng lại để bảo vệ token; hãy "
          "nhờ cán bộ CNTT kiểm tra mã PIN.",
          "The token has one PIN try left before it locks. Kyso stops to protect it; ask IT to "
          "check the PIN."},
    Entry{ErrorCode::PinMustChange, "PIN_MUST_CHANGE", false,
          "Token yêu cầu đổi mã PIN trước khi dùng. Hãy đổi PIN bằng công cụ của cán bộ CNTT "
          "(kyso provision change-pin).",
          "The token requires a PIN change before use. Change it with IT's tool (kyso provision "
          "change-pin)."},
    Entry{ErrorCode::PinInvalid, "PIN_INVALID", true,
          "Mã PIN có độ dài hoặc ký tự không hợp lệ với token này.",
          "The PIN's length or characters are not valid for this token."},
    Entry{ErrorCode::CredentialNotFound, "CREDENTIAL_NOT_FOUND", true,
          "Không tìm thấy chứng thư số được yêu cầu. Hãy cắm đúng token hoặc chọn chứng thư khác.",
          "The requested certificate was not found. Plug in the right token or choose another "
          "certificate."},
    Entry{ErrorCode::KeyNotFound, "KEY_NOT_FOUND", false,
          "Token có chứng thư số nhưng không có khóa bí mật tương ứng. Hãy nhờ cán bộ CNTT kiểm "
          "tra token.",
          "The token holds the certificate but not its private key. Ask IT to check the token."},
    Entry{ErrorCode::AlgorithmUnsupported, "ALGORITHM_UNSUPPORTED", false,
          "Khóa hoặc token không hỗ trợ thuật toán ký được yêu cầu.",
          "The key or token does not support the requested signature algorithm."},
    Entry{ErrorCode::DigestInvalid, "DIGEST_INVALID", false,
          "Giá trị băm không hợp lệ (sai độ dài so với thuật toán).",
          "The hash value is invalid (wrong length for the algorithm)."},
    Entry{ErrorCode::CertInvalid, "CERT_INVALID", false,
          "Chứng thư số không đọc được hoặc không hợp lệ.",
          "The certificate cannot be read or is not valid."},
    Entry{ErrorCode::CertExpired, "CERT_EXPIRED", false,
          "Chứng thư số đã hết hạn. Hãy gia hạn chứng thư với nhà cung cấp dịch vụ chứng thực.",
          "The certificate has expired. Renew it with your certification authority."},
    Entry{ErrorCode::CertNotYetValid, "CERT_NOT_YET_VALID", false,
          "Chứng thư số chưa đến ngày có hiệu lực. Hãy kiểm tra đồng hồ của máy tính.",
          "The certificate is not valid yet. Check the computer's clock."},
    Entry{ErrorCode::CertRevoked, "CERT_REVOKED", false,
          "Chứng thư số đã bị thu hồi. Hãy liên hệ nhà cung cấp dịch vụ chứng thực để cấp mới.",
          "The certificate has been revoked. Contact your certification authority for a new one."},
    Entry{ErrorCode::CertUntrusted, "CERT_UNTRUSTED", false,
          "Chứng thư số không được cấp bởi tổ chức chứng thực tin cậy.",
          "The certificate was not issued by a trusted certification authority."},
    Entry{ErrorCode::CertKeyUsage, "CERT_KEY_USAGE", false,
          "Chứng thư số không được phép dùng để ký số.",
          "The certificate is not allowed to be used for digital signatures."},
    Entry{ErrorCode::CertRevocationUnknown, "CERT_REVOCATION_UNKNOWN", true,
          "Không kiểm tra được tình trạng thu hồi của chứng thư số. Hãy kiểm tra kết nối mạng.",
          "The certificate's revocation status could not be checked. Check the network."},
    Entry{ErrorCode::OriginForbidden, "ORIGIN_FORBIDDEN", false,
          "Trang web này không được phép dùng Kyso.", "This website is not allowed to use Kyso."},
    Entry{ErrorCode::OriginNotPaired, "ORIGIN_NOT_PAIRED", true,
          "Trang web này chưa được ghép nối với Kyso. Hãy bấm \"Ghép nối\" và xác nhận mã trong "
          "hộp thoại của Kyso.",
          "This website is not paired with Kyso yet. Click \"Pair\" and confirm the code in "
          "Kyso's dialog."},
    Entry{ErrorCode::UserCancelled, "USER_CANCELLED", true, "Người dùng đã hủy thao tác.",
          "The user cancelled."},
    Entry{ErrorCode::Busy, "BUSY", true,
          "Kyso đang bận với một yêu cầu khác. Hãy thử lại sau giây lát.",
          "Kyso is busy with another request. Try again in a moment."},
    Entry{ErrorCode::PairCooldown, "PAIR_COOLDOWN", true,
          "Yêu cầu ghép nối trước của trang web này vừa bị hủy hoặc hết giờ nên tạm thời bị từ "
          "chối. Hãy đợi giây lát rồi bấm \"Ghép nối\" lại.",
          "This website's previous pairing request was just cancelled or timed out, so pairing "
          "is refused for a while. Wait a moment, then click \"Pair\" again."},
    Entry{ErrorCode::Timeout, "TIMEOUT", true, "Hết thời gian chờ. Hãy thử lại.",
          "The operation timed out. Try again."},
    Entry{ErrorCode::RoleNoCredential, "ROLE_NO_CREDENTIAL", true,
          "Không có chứng thư số phù hợp với vai trò này (giáo viên, hiệu trưởng cần chứng thư cá "
          "nhân; con dấu cần chứng thư tổ chức). Hãy cắm đúng token.",
          "No certificate fits this role (teacher and principal need a personal certificate, the "
          "seal an organization certificate). Plug in the right token."},
    Entry{ErrorCode::RoleMismatch, "ROLE_MISMATCH", false,
          "Chứng thư số đã chọn không dùng được cho vai trò này.",
          "The chosen certificate cannot be used for this role."},
    Entry{ErrorCode::BatchLimit, "BATCH_LIMIT", false,
          "Lô ký vượt quá số văn bản đã được phê duyệt.",
          "The batch exceeds the number of documents that were approved."},
    Entry{ErrorCode::RemoteUnreachable, "REMOTE_UNREACHABLE", true,
          "Không kết nối được dịch vụ ký số từ xa. Hãy kiểm tra mạng rồi thử lại.",
          "The remote signing service cannot be reached. Check the network and try again."},
    Entry{ErrorCode::RemoteAuthFailed, "REMOTE_AUTH_FAILED", true,
          "Dịch vụ ký số từ xa từ chối đăng nhập. Hãy kiểm tra tài khoản.",
          "The remote signing service refused the login. Check the account."},
    Entry{ErrorCode::RemoteError, "REMOTE_ERROR", true, "Dịch vụ ký số từ xa báo lỗi.",
          "The remote signing service reported an error."},
    Entry{ErrorCode::OtpIncorrect, "OTP_INCORRECT", true,
          "Mã OTP không đúng hoặc đã hết hạn. Hãy nhập mã mới.",
          "The OTP is wrong or expired. Enter a new one."},
    Entry{ErrorCode::RemoteLocked, "REMOTE_LOCKED", true,
          "Dịch vụ ký số từ xa đã tạm khóa tài khoản vì nhập sai nhiều lần. Hãy đợi rồi thử lại, "
          "hoặc liên hệ cán bộ CNTT.",
          "The remote signing service has locked the account after too many wrong attempts. "
          "Wait and try again later, or contact IT."},
    Entry{ErrorCode::DocumentInvalid, "DOCUMENT_INVALID", false,
          "Tệp văn bản bị hỏng hoặc không đúng định dạng.",
          "The document is damaged or not in the expected format."},
    Entry{ErrorCode::DocumentEncrypted, "DOCUMENT_ENCRYPTED", false,
          "Tệp PDF đã được mã hóa nên không ký được. Hãy dùng bản không mã hóa.",
          "The PDF is encrypted and cannot be signed. Use an unencrypted copy."},
    Entry{ErrorCode::TsaUnavailable, "TSA_UNAVAILABLE", true,
          "Không kết nối được máy chủ cấp dấu thời gian. Chưa văn bản nào bị thay đổi; hãy thử lại "
          "sau.",
          "The timestamp server cannot be reached. No document was changed; try again later."},
    Entry{ErrorCode::TsaError, "TSA_ERROR", true,
          "Máy chủ cấp dấu thời gian trả lời không hợp lệ. Chưa văn bản nào bị thay đổi.",
          "The timestamp server sent an invalid answer. No document was changed."},
    Entry{ErrorCode::TsaNotConfigured, "TSA_NOT_CONFIGURED", false,
          "Kyso chưa được cấu hình máy chủ cấp dấu thời gian nên không ký được mức có dấu thời "
          "gian (B-T). Hãy nhờ cán bộ CNTT đặt tsa_url trong cấu hình, hoặc ký mức B-B.",
          "Kyso has no timestamp server configured, so it cannot make B-T signatures. Ask IT to "
          "set tsa_url in the configuration, or sign at level B-B."},
    Entry{ErrorCode::FormatsUnavailable, "FORMATS_UNAVAILABLE", false,
          "Kyso không nạp được phần ký văn bản XML/PDF (kyso-formats-documents.so) nên chưa ký "
          "được văn bản này; ký mã băm và CMS vẫn dùng được. Hãy cài lại gói kyso-agent hoặc nhờ "
          "cán bộ CNTT chạy \"kyso doctor\".",
          "Kyso cannot load its XML/PDF signing part (kyso-formats-documents.so), so this document "
          "was not signed; hash and CMS signing still work. Reinstall the kyso-agent package or "
          "ask IT to run \"kyso doctor\"."},
    Entry{ErrorCode::DocumentTooLarge, "DOCUMENT_TOO_LARGE", false,
          "Văn bản quá lớn để gửi cho Kyso. Hãy chia nhỏ văn bản hoặc liên hệ cán bộ CNTT.",
          "The document is too large to send to Kyso. Split it or contact IT."},
    Entry{ErrorCode::UploadNotFound, "UPLOAD_NOT_FOUND", false,
          "Kyso không còn giữ tệp đã gửi (đã dùng, đã hủy hoặc kết nối đã đóng). Hãy gửi lại "
          "tệp.",
          "Kyso no longer holds the transferred file (already used, aborted or the connection "
          "closed). Send the file again."},
    Entry{ErrorCode::UploadMismatch, "UPLOAD_MISMATCH", true,
          "Tệp gửi đến Kyso không khớp kích thước hoặc mã băm đã báo trước. Hãy gửi lại tệp.",
          "The file sent to Kyso does not match its announced size or hash. Send it again."},
    Entry{ErrorCode::PreparedStateInvalid, "PREPARED_STATE_INVALID", false,
          "Dữ liệu chuẩn bị ký của văn bản đã bị thay đổi, hỏng, không do máy chủ này tạo ra hoặc "
          "thuộc phiên bản khác, nên chữ ký không được gắn vào. Hãy chuẩn bị ký lại văn bản.",
          "The document's prepared signing state was changed, is damaged, was not made by this "
          "server or is of another version, so no signature was embedded. Prepare the document "
          "again."},
    Entry{ErrorCode::SignatureMismatch, "SIGNATURE_MISMATCH", false,
          "Chữ ký nhận về không khớp với mã băm đã chuẩn bị cho văn bản này (ký nhầm văn bản khác "
          "hoặc chữ ký hỏng), nên không được gắn vào. Hãy ký lại đúng mã băm của văn bản.",
          "The signature returned does not match the digest prepared for this document (another "
          "document was signed, or the signature is damaged), so it was not embedded. Sign this "
          "document's digest again."},
    Entry{ErrorCode::CertificateMismatch, "CERTIFICATE_MISMATCH", false,
          "Chữ ký được tạo bằng chứng thư số khác với chứng thư đã dùng khi chuẩn bị ký văn bản, "
          "nên không được gắn vào. Hãy chuẩn bị lại với đúng chứng thư số của người ký.",
          "The signature was made with another certificate than the one the document was "
          "prepared for, so it was not embedded. Prepare it again with the signer's "
          "certificate."},
    Entry{ErrorCode::OutputExists, "OUTPUT_EXISTS", false,
          "Thư mục kết quả đã có một tệp cùng tên không phải bản đã ký của văn bản này bằng "
          "chứng thư số đang dùng, nên Kyso không ghi đè. Hãy xóa hoặc chuyển tệp đó đi, hoặc "
          "chọn thư mục kết quả khác.",
          "The output folder already holds a file of that name that is not this document "
          "signed with the certificate in use, so Kyso does not overwrite it. Remove or move "
          "that file, or choose another output folder."},
};

const Entry& entry(ErrorCode code) noexcept {
  for (const auto& e : kEntries) {
    if (e.code == code) return e;
  }
  return kEntries[3];  // Internal: unreachable while the table covers the enum (tested).
}

}  // namespace

Language parse_language(std::string_view s) noexcept {
  return s == "en" ? Language::En : Language::Vi;
}

std::string_view code_name(ErrorCode code) noexcept {
  return entry(code).name;
}

std::optional<ErrorCode> code_from_name(std::string_view name) noexcept {
  for (const auto& e : kEntries) {
    if (e.name == name) return e.code;
  }
  return std::nullopt;
}

std::string_view message(ErrorCode code, Language lang) noexcept {
  const auto& e = entry(code);
  return lang == Language::Vi ? e.vi : e.en;
}

bool is_retriable(ErrorCode code) noexcept {
  return entry(code).retriable;
}

Error::Error(ErrorCode code, std::string detail)
    : std::runtime_error(std::string(code_name(code)) + ": " + detail),
      code_(code),
      detail_(std::move(detail)) {}

Error::Error(ErrorCode code, std::string detail, unsigned long ck_rv, std::string call)
    : std::runtime_error(std::string(code_name(code)) + ": " + detail),
      code_(code),
      detail_(std::move(detail)),
      ck_rv_(ck_rv),
      call_(std::move(call)) {}

}  // namespace kyso
