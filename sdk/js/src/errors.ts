/**
 * Typed errors. Every failure the SDK reports is a {@link KysoError} whose `code` is the agent's
 * stable symbolic code (e.g. `PIN_LOCKED`) or one of the SDK's own transport codes
 * (`AGENT_NOT_FOUND`, `CONNECTION_LOST`, `TIMEOUT`, `PROTOCOL_ERROR`, `NOT_CONNECTED`, `ABORTED`).
 * Messages come from the agent when it sends them; the table below is the fallback, so a page
 * can always show a Vietnamese message that says what to do.
 */

/** Codes the agent sends (docs/protocol.md) plus the SDK's own transport codes. */
export type KnownErrorCode =
  // agent (core/src/error.cpp, docs/protocol.md section 4)
  | 'BAD_REQUEST'
  | 'NOT_SUPPORTED'
  | 'CONFIG_INVALID'
  | 'INTERNAL'
  | 'MODULE_LOAD_FAILED'
  | 'MODULE_NOT_INSTALLED'
  | 'TOKEN_NOT_FOUND'
  | 'TOKEN_REMOVED'
  | 'TOKEN_UNRESPONSIVE'
  | 'TOKEN_ERROR'
  | 'LOGIN_REQUIRED'
  | 'PIN_INCORRECT'
  | 'PIN_REPEATED'
  | 'PIN_LOCKED'
  | 'PIN_FINAL_TRY'
  | 'PIN_MUST_CHANGE'
  | 'PIN_INVALID'
  | 'CREDENTIAL_NOT_FOUND'
  | 'KEY_NOT_FOUND'
  | 'ALGORITHM_UNSUPPORTED'
  | 'DIGEST_INVALID'
  | 'CERT_INVALID'
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_REVOKED'
  | 'CERT_UNTRUSTED'
  | 'CERT_KEY_USAGE'
  | 'CERT_REVOCATION_UNKNOWN'
  | 'ORIGIN_FORBIDDEN'
  | 'ORIGIN_NOT_PAIRED'
  | 'PAIR_COOLDOWN'
  | 'USER_CANCELLED'
  | 'BUSY'
  | 'TIMEOUT'
  | 'ROLE_NO_CREDENTIAL'
  | 'ROLE_MISMATCH'
  | 'BATCH_LIMIT'
  | 'REMOTE_UNREACHABLE'
  | 'REMOTE_AUTH_FAILED'
  | 'REMOTE_ERROR'
  | 'OTP_INCORRECT'
  | 'DOCUMENT_INVALID'
  | 'DOCUMENT_ENCRYPTED'
  | 'TSA_UNAVAILABLE'
  | 'TSA_ERROR'
  | 'FORMATS_UNAVAILABLE'
  // SDK only: transport and local checks
  | 'AGENT_NOT_FOUND'
  | 'AGENT_REFUSED'
  | 'LOCAL_NETWORK_PROMPT'
  | 'LOCAL_NETWORK_DENIED'
  | 'LOCAL_NETWORK_FRAME'
  | 'LOCAL_NETWORK_INSECURE'
  | 'CONNECTION_LOST'
  | 'NOT_CONNECTED'
  | 'PROTOCOL_ERROR'
  | 'ABORTED';

/** A known code, or any other string a newer agent may send (kept, never rewritten). */
export type KysoErrorCode = KnownErrorCode | (string & {});

type Messages = { vi: string; en: string };

const fallback: Partial<Record<KnownErrorCode, Messages>> = {
  BAD_REQUEST: {
    vi: 'Yêu cầu gửi đến Kyso không hợp lệ. Hãy báo cho bộ phận hỗ trợ của hệ thống học bạ.',
    en: 'The request sent to Kyso is invalid. Report it to the transcript system’s support.',
  },
  NOT_SUPPORTED: {
    vi: 'Phiên bản Kyso trên máy chưa hỗ trợ thao tác này. Hãy cập nhật Kyso.',
    en: 'The installed Kyso does not support this operation yet. Update Kyso.',
  },
  INTERNAL: {
    vi: 'Kyso gặp lỗi nội bộ. Hãy thử lại; nếu vẫn lỗi, liên hệ cán bộ CNTT.',
    en: 'Kyso hit an internal error. Try again; if it persists, contact IT.',
  },
  ORIGIN_FORBIDDEN: {
    vi: 'Trang web này không được phép dùng Kyso.',
    en: 'This website is not allowed to use Kyso.',
  },
  ORIGIN_NOT_PAIRED: {
    vi: 'Trang web này chưa được ghép nối với Kyso. Hãy bấm "Ghép nối" và xác nhận mã trong hộp thoại của Kyso.',
    en: 'This website is not paired with Kyso yet. Click "Pair" and confirm the code in Kyso’s dialog.',
  },
  PAIR_COOLDOWN: {
    vi: 'Yêu cầu ghép nối trước của trang này vừa bị hủy hoặc hết giờ, nên Kyso tạm thời chưa mở lại hộp thoại. Hãy đợi giây lát rồi bấm "Ghép nối" lại.',
    en: 'This site’s previous pairing request was just cancelled or timed out, so Kyso does not reopen the dialog yet. Wait a moment, then click "Pair" again.',
  },
  USER_CANCELLED: { vi: 'Người dùng đã hủy thao tác.', en: 'The user cancelled.' },
  BUSY: {
    vi: 'Kyso đang bận với một yêu cầu khác. Hãy thử lại sau giây lát.',
    en: 'Kyso is busy with another request. Try again in a moment.',
  },
  TIMEOUT: { vi: 'Hết thời gian chờ. Hãy thử lại.', en: 'The operation timed out. Try again.' },
  BATCH_LIMIT: {
    vi: 'Lô ký vượt quá số văn bản đã được phê duyệt.',
    en: 'The batch exceeds the number of documents that were approved.',
  },
  TOKEN_NOT_FOUND: {
    vi: 'Không tìm thấy token. Hãy cắm token USB vào máy rồi thử lại.',
    en: 'No token found. Plug in the USB token and try again.',
  },
  TOKEN_REMOVED: {
    vi: 'Token đã bị rút ra trong khi ký. Hãy cắm lại token và ký lại các văn bản chưa ký.',
    en: 'The token was removed while signing. Plug it back in and sign the remaining documents.',
  },
  TOKEN_UNRESPONSIVE: {
    vi: 'Token hoặc phần mềm điều khiển token không phản hồi (thường do token bị rút ra khi đang ký). Hãy rút token ra, cắm lại rồi ký lại các văn bản chưa ký.',
    en: 'The token or its driver stopped answering (usually because it was pulled out while signing). Unplug it, plug it back in and sign the remaining documents.',
  },
  TOKEN_ERROR: {
    vi: 'Token báo lỗi. Hãy rút token ra, cắm lại rồi thử lại; nếu vẫn lỗi, liên hệ cán bộ CNTT.',
    en: 'The token reported an error. Unplug it, plug it back in and retry; if it persists, contact IT.',
  },
  PIN_INCORRECT: {
    vi: 'Mã PIN không đúng. Hãy kiểm tra kỹ trước khi nhập lại: token sẽ bị khóa sau vài lần sai.',
    en: 'Wrong PIN. Check it carefully before trying again: the token locks after a few wrong tries.',
  },
  PIN_LOCKED: {
    vi: 'Mã PIN của token đã bị khóa. Hãy mang token đến cán bộ CNTT hoặc nhà cung cấp chứng thư số để mở khóa.',
    en: 'The token’s PIN is locked. Take the token to IT or your certificate provider to unblock it.',
  },
  PIN_FINAL_TRY: {
    vi: 'Token chỉ còn một lần nhập PIN trước khi bị khóa. Kyso dừng lại để bảo vệ token; hãy nhờ cán bộ CNTT kiểm tra mã PIN.',
    en: 'The token has one PIN try left before it locks. Kyso stops to protect it; ask IT to check the PIN.',
  },
  CREDENTIAL_NOT_FOUND: {
    vi: 'Không tìm thấy chứng thư số được yêu cầu. Hãy cắm đúng token hoặc chọn chứng thư khác.',
    en: 'The requested certificate was not found. Plug in the right token or choose another certificate.',
  },
  ALGORITHM_UNSUPPORTED: {
    vi: 'Khóa hoặc token không hỗ trợ thuật toán ký được yêu cầu.',
    en: 'The key or token does not support the requested signature algorithm.',
  },
  DIGEST_INVALID: {
    vi: 'Giá trị băm không hợp lệ (sai độ dài so với thuật toán).',
    en: 'The hash value is invalid (wrong length for the algorithm).',
  },
  CERT_EXPIRED: {
    vi: 'Chứng thư số đã hết hạn. Hãy gia hạn chứng thư với nhà cung cấp dịch vụ chứng thực.',
    en: 'The certificate has expired. Renew it with your certification authority.',
  },
  CERT_REVOKED: {
    vi: 'Chứng thư số đã bị thu hồi. Hãy liên hệ nhà cung cấp dịch vụ chứng thực để cấp mới.',
    en: 'The certificate has been revoked. Contact your certification authority for a new one.',
  },
  ROLE_NO_CREDENTIAL: {
    vi: 'Không có chứng thư số phù hợp với vai trò này (giáo viên, hiệu trưởng cần chứng thư cá nhân; con dấu cần chứng thư tổ chức). Hãy cắm đúng token.',
    en: 'No certificate fits this role (teacher and principal need a personal certificate, the seal an organization certificate). Plug in the right token.',
  },
  ROLE_MISMATCH: {
    vi: 'Chứng thư số đã chọn không dùng được cho vai trò này.',
    en: 'The chosen certificate cannot be used for this role.',
  },
  FORMATS_UNAVAILABLE: {
    vi: 'Kyso trên máy này chưa ký được văn bản XML/PDF (thiếu phần ký văn bản). Ký mã băm vẫn dùng được; hãy nhờ cán bộ CNTT cài lại kyso-agent.',
    en: 'Kyso on this PC cannot sign XML/PDF documents (its document signing part is missing). Hash signing still works; ask IT to reinstall kyso-agent.',
  },
  AGENT_NOT_FOUND: {
    vi: 'Không kết nối được với Kyso trên máy này. Hãy kiểm tra Kyso đã được cài đặt và đang chạy (biểu tượng Kyso ở khay hệ thống), rồi tải lại trang.',
    en: 'Cannot reach Kyso on this computer. Check that Kyso is installed and running, then reload the page.',
  },
  AGENT_REFUSED: {
    vi: 'Kyso đang chạy nhưng không cho phép trang web này (trang chưa có trong danh sách được phép của nhà trường, hoặc Kyso thuộc về người dùng khác trên máy). Hãy nhờ cán bộ CNTT thêm địa chỉ trang này vào danh sách được phép của Kyso.',
    en: 'Kyso is running but does not allow this website (it is not on the school’s allow-list, or Kyso belongs to another user on this computer). Ask IT to add this site’s address to Kyso’s allow-list.',
  },
  LOCAL_NETWORK_PROMPT: {
    vi: 'Trình duyệt cần bạn cho phép trang này kết nối tới Kyso trên máy. Khi trình duyệt hỏi trang này có được truy cập thiết bị/ứng dụng trên máy (mạng cục bộ) không, hãy bấm "Cho phép", rồi thử lại. Nếu không thấy câu hỏi, hãy tải lại trang hoặc nhờ cán bộ CNTT.',
    en: 'The browser needs your permission for this page to reach Kyso on this computer. When it asks whether this site may access apps and devices on this computer (local network), click "Allow", then try again. If you see no question, reload the page or ask IT.',
  },
  LOCAL_NETWORK_DENIED: {
    vi: 'Trình duyệt đang chặn trang này kết nối tới Kyso trên máy (quyền "Mạng cục bộ" bị từ chối). Bấm biểu tượng bên trái thanh địa chỉ, chọn "Cài đặt trang web", đặt "Mạng cục bộ" thành "Cho phép" rồi tải lại trang. Máy do nhà trường quản lý: nhờ cán bộ CNTT cho phép trang này (chính sách trình duyệt của Kyso).',
    en: 'The browser blocks this page from reaching Kyso on this computer (the "Local network" permission is denied). Click the icon left of the address bar, open "Site settings", set "Local network" to "Allow" and reload the page. On a school-managed PC, ask IT to allow this site (Kyso’s browser policy).',
  },
  LOCAL_NETWORK_FRAME: {
    vi: 'Trang ký số đang được nhúng trong một trang khác không cho phép nó kết nối tới Kyso. Hãy mở trang ký số trong một thẻ riêng, hoặc báo bộ phận kỹ thuật của hệ thống thêm allow="local-network-access; loopback-network" vào khung nhúng (iframe).',
    en: 'The signing page is embedded in another page that does not let it reach Kyso. Open the signing page in its own tab, or ask the system’s developers to add allow="local-network-access; loopback-network" to the iframe.',
  },
  LOCAL_NETWORK_INSECURE: {
    vi: 'Trang này được mở bằng http:// nên trình duyệt không cho nó kết nối tới Kyso trên máy. Hãy mở trang bằng địa chỉ https://; nếu hệ thống không có https, hãy báo cán bộ CNTT.',
    en: 'This page was opened over http://, so the browser does not let it reach Kyso on this computer. Open it with its https:// address; if the system has none, tell IT.',
  },
  CONNECTION_LOST: {
    vi: 'Mất kết nối với Kyso. Các văn bản chưa có kết quả không được ký lại tự động; hãy kết nối lại rồi kiểm tra trước khi ký tiếp.',
    en: 'The connection to Kyso was lost. Documents without a result are not re-signed automatically; reconnect and check before signing again.',
  },
  NOT_CONNECTED: {
    vi: 'Chưa kết nối với Kyso. Hãy kết nối trước.',
    en: 'Not connected to Kyso. Connect first.',
  },
  PROTOCOL_ERROR: {
    vi: 'Kyso trả lời không đúng giao thức. Hãy cập nhật Kyso hoặc trang web.',
    en: 'Kyso answered outside the protocol. Update Kyso or the web page.',
  },
  ABORTED: { vi: 'Trang web đã hủy yêu cầu.', en: 'The page aborted the request.' },
};

/** Fallback messages for a code (generic ones for codes this SDK version does not know). */
export function messagesFor(code: string): Messages {
  return (
    fallback[code as KnownErrorCode] ?? {
      vi: `Kyso báo lỗi (${code}).`,
      en: `Kyso reported an error (${code}).`,
    }
  );
}

export interface KysoErrorInit {
  code: KysoErrorCode;
  messageVi?: string | undefined;
  messageEn?: string | undefined;
  /** Technical detail for logs (never shown as the main message). */
  detail?: string | undefined;
  /** Whether trying again can succeed without IT's help (agent's hint, when sent). */
  retriable?: boolean | undefined;
  /** The request this error answers, when any. */
  requestId?: string | undefined;
  /** Extra fields the agent attached (e.g. what is missing). */
  data?: unknown;
}

/** The only error type the SDK rejects with. */
export class KysoError extends Error {
  override readonly name = 'KysoError';
  readonly code: KysoErrorCode;
  readonly messageVi: string;
  readonly messageEn: string;
  readonly detail: string | undefined;
  readonly retriable: boolean | undefined;
  readonly requestId: string | undefined;
  readonly data: unknown;

  constructor(init: KysoErrorInit) {
    const fb = messagesFor(init.code);
    const en = init.messageEn || fb.en;
    super(`${init.code}: ${en}${init.detail ? ` (${init.detail})` : ''}`);
    this.code = init.code;
    this.messageVi = init.messageVi || fb.vi;
    this.messageEn = en;
    this.detail = init.detail;
    this.retriable = init.retriable;
    this.requestId = init.requestId;
    this.data = init.data;
  }

  /** The message in the given language ("vi" by default). */
  localized(lang: 'vi' | 'en' = 'vi'): string {
    return lang === 'en' ? this.messageEn : this.messageVi;
  }
}

/** True for a KysoError, optionally of one of the given codes. */
export function isKysoError(e: unknown, ...codes: KysoErrorCode[]): e is KysoError {
  return e instanceof KysoError && (codes.length === 0 || codes.includes(e.code));
}
