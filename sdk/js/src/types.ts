/** Types of protocol v1 (docs/protocol.md, docs/schemas/) as the SDK exposes them. */
import type { KysoError } from './errors.js';

export type Role = 'teacher' | 'principal' | 'seal';
export type CredentialKind = 'person' | 'organization';
export type HashAlgorithm = 'sha256' | 'sha384' | 'sha512';
export type SignatureAlgorithm =
  | 'rsa-sha256'
  | 'rsa-sha384'
  | 'rsa-sha512'
  | 'rsa-pss-sha256'
  | 'rsa-pss-sha384'
  | 'rsa-pss-sha512'
  | 'ecdsa-sha256'
  | 'ecdsa-sha384'
  | 'ecdsa-sha512';
/** ECDSA only: DER SEQUENCE (default) or raw r||s (what WebCrypto and JWS use). */
export type SignatureEncoding = 'der' | 'raw';

/** A request or event id; the SDK uses integers, the batch id is its `batch.sign` request id. */
export type RequestId = number | string;

export interface Capabilities {
  itemTypes: string[];
  reservedItemTypes?: string[];
  hashAlgorithms: HashAlgorithm[];
  algorithms: SignatureAlgorithm[];
  roles: Role[];
  batch: boolean;
  maxBatchItems?: number;
  maxInFlight?: number;
  remote?: boolean;
  /** batch.sign's coalesced progress (`progressInterval`). */
  progressInterval?: boolean;
  /** Coalesced events can carry the items' signatures (`signaturesInEvents`). */
  signaturesInEvents?: boolean;
  [more: string]: unknown;
}

/** `hello`'s result. */
export interface HelloResult {
  agent: 'kyso-agent';
  version: string;
  /** The negotiated protocol version. */
  protocol: number;
  protocols: number[];
  /** This page's origin as the agent saw it (the browser's Origin header). */
  origin: string;
  /** True when the origin is allow-listed by IT or paired by the user. */
  paired: boolean;
  allowListed: boolean;
  capabilities: Capabilities;
  [more: string]: unknown;
}

export interface PairResult {
  paired: true;
  origin: string;
  /** The code that was shown ("482 915"), or undefined when no dialog was needed. */
  code?: string;
}

export interface PairCode {
  /** Six digits as "482 915": show it prominently, the user compares it with Kyso's dialog. */
  code: string;
  /** Seconds the code stays valid. */
  expiresIn: number;
}

export interface CertificateUid {
  prefix: string;
  value: string;
  raw: string;
}

/** The certificate as the agent parsed it (Vietnamese fields included). */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  commonName: string;
  organization?: string;
  title?: string;
  state?: string;
  country?: string;
  uids?: CertificateUid[];
  cccd?: string;
  cmnd?: string;
  passport?: string;
  mst?: string;
  mns?: string;
  kind: CredentialKind | 'unknown';
  serial?: string;
  notBefore: string;
  notAfter: string;
  validNow: boolean;
  keyType: 'RSA' | 'EC';
  keyBits?: number;
  curve?: string;
  keyUsage?: string[];
  extendedKeyUsage?: string[];
  [more: string]: unknown;
}

export interface CredentialSource {
  kind: 'token' | 'remote';
  name?: string;
  serial?: string;
  module?: string;
}

export interface Credential {
  /** SHA-256 of the certificate, hex. */
  id: string;
  certificate: CertificateInfo;
  /** The certificate, base64 DER. */
  certificateDer: string;
  /** Issuers, base64 DER, nearest first. */
  chain: string[];
  source: CredentialSource;
  algorithms: SignatureAlgorithm[];
  roles: Role[];
  suggestedRole?: Role | null;
}

export interface ListCredentialsOptions {
  role?: Role;
  kind?: CredentialKind;
  validNow?: boolean;
  /**
   * Sign in to the remote signing services that are not signed in first: the agent asks each
   * service's password in its own dialog (never through the page). Without it, listing never
   * opens a dialog.
   */
  signIn?: boolean;
}

/** A remote signing service IT configured in the agent (credentials.list's remoteServices). */
export interface RemoteService {
  name: string;
  url: string;
  username: string;
  signedIn: boolean;
  /** Credentials it listed at the last sign-in. */
  credentials: number;
}

/** Bytes of a digest, or a string in hex or base64 (standard or URL-safe). */
export type HashInput = Uint8Array | ArrayBuffer | string;

/**
 * One thing to sign. v1 signs digests (`type: "hash"`); the page's own `key` (e.g. the
 * transcript's lookup code) is never sent, it comes back with the item in results and progress.
 */
export interface HashItem<K = string> {
  type?: 'hash';
  hash: HashInput;
  /** Default: guessed from the digest's length (32 → sha256, 48 → sha384, 64 → sha512). */
  hashAlgorithm?: HashAlgorithm;
  /** What the user sees in Kyso's approval dialog (≤ 200 characters), e.g. the student's name. */
  title: string;
  key?: K;
}

/** Bytes of a document: an array, a buffer, or a Blob/File (read when sent). */
export type DocumentInput = Uint8Array | ArrayBuffer | Blob;
export type XmlProfile = 'xmldsig' | 'xades-b-b' | 'xades-b-t' | 'xades-b-lt' | 'xades-b-lta';
/**
 * B-B; B-T with a timestamp from the agent's TSA; B-LT adds the validation data (certificates,
 * OCSP/CRL) so the signature can be checked after the certificates expire; B-LTA adds an archive
 * timestamp over it all (docs/protocol.md, "Long-term levels"). capabilities.documents says which
 * levels this agent offers; a CMS over a hash is b-b or b-t only.
 */
export type SignatureLevel = 'b-b' | 'b-t' | 'b-lt' | 'b-lta';

/** An XML transcript signed in place (enveloped XML-DSig or XAdES), docs/protocol.md. */
export interface XmlItem<K = string> {
  type: 'xml';
  /** The document: a string is sent as UTF-8 text. */
  document: string | DocumentInput;
  title: string;
  /** Id of the element signed. */
  reference: string;
  /** Id of the element receiving the Signature (default: the signed element). */
  parent?: string;
  /** Role-named element created in the parent to hold the Signature, e.g. "ChuKyHieuTruong". */
  container?: string;
  signatureId?: string;
  profile?: XmlProfile;
  key?: K;
}

/** A PDF signed with PAdES by incremental update. Large files are uploaded in chunks. */
export interface PdfItem<K = string> {
  type: 'pdf';
  document: DocumentInput;
  title: string;
  level?: SignatureLevel;
  fieldName?: string;
  reason?: string;
  location?: string;
  /**
   * A box on the page with the signer's name, role and time (Vietnamese): true for the default
   * place (bottom left of the last page) or where, in points (page 1-based, 0 = last).
   */
  visible?: boolean | { page?: number; x?: number; y?: number; width?: number; height?: number };
  key?: K;
}

/** CMS / CAdES over any bytes (or over a digest the page's server computed: `hash`). */
export interface CmsItem<K = string> {
  type: 'cms';
  document?: string | DocumentInput;
  hash?: HashInput;
  hashAlgorithm?: HashAlgorithm;
  title: string;
  detached?: boolean;
  level?: SignatureLevel;
  key?: K;
}

export type DocumentItem<K = string> = XmlItem<K> | PdfItem<K> | CmsItem<K>;

/** A signed document as the SDK returns it (downloaded and checked against its SHA-256). */
export interface SignedDocument {
  /** The signed XML / PDF / CMS bytes. */
  document: Uint8Array;
  size: number;
  /** SHA-256 of `document`, hex (checked by the SDK). */
  sha256: string;
  /** XML: the new Signature's Id. */
  signatureId?: string;
  /** PDF: the signature field's name. */
  fieldName?: string;
}

export interface SignDocumentResult extends SignedDocument {
  algorithm: SignatureAlgorithm;
  credentialId: string;
  certificate: string;
  chain: string[];
}

export type DocumentItemResult<K = string> =
  | ({ index: number; item: DocumentItem<K>; ok: true } & SignedDocument)
  | { index: number; item: DocumentItem<K>; ok: false; error: KysoError };

export interface DocumentBatchSummary<K = string>
  extends Omit<BatchSummary<K>, 'results' | 'succeeded' | 'failures'> {
  results: DocumentItemResult<K>[];
  succeeded: Extract<DocumentItemResult<K>, { ok: true }>[];
  failures: Extract<DocumentItemResult<K>, { ok: false }>[];
}

export interface TransferProgress {
  /** Bytes sent or received so far, and the total. */
  done: number;
  total: number;
}

export interface DocumentOptions {
  /** Documents bigger than this are uploaded in chunks first (default 256 KiB). */
  uploadAboveBytes?: number;
  /** Upload progress of large documents (per document). */
  onUpload?: (progress: TransferProgress & { index: number }) => void;
}

export interface UploadResult {
  uploadId: string;
  size: number;
  sha256: string;
}

export interface SignOptions {
  role: Role;
  /** Otherwise the agent picks the role's credential. */
  credentialId?: string;
  algorithm?: SignatureAlgorithm;
  signatureEncoding?: SignatureEncoding;
  /** How long to wait for the answer, dialog included (default 180 000 ms). */
  timeoutMs?: number;
}

export interface SignResult {
  /** base64 */
  signature: string;
  algorithm: SignatureAlgorithm;
  credentialId: string;
  /** The signer's certificate, base64 DER. */
  certificate: string;
  chain: string[];
  /** The digest that was signed, hex. */
  hash: string;
}

export interface BatchProgress<K = string, I = HashItem<K>> {
  batchId: RequestId;
  done: number;
  total: number;
  index: number;
  ok: boolean;
  item: I;
  error?: KysoError;
  /** A hash item's signature (base64), when the agent sent it with the progress. */
  signature?: string;
}

export type BatchItemResult<K = string> =
  | { index: number; item: HashItem<K>; ok: true; signature: string }
  | { index: number; item: HashItem<K>; ok: false; error: KysoError };

export interface BatchSummary<K = string> {
  batchId: RequestId;
  total: number;
  signed: number;
  failed: number;
  /** True when `cancel()` stopped it: the unsigned items failed with USER_CANCELLED. */
  cancelled: boolean;
  credentialId: string;
  algorithm: SignatureAlgorithm;
  certificate: string;
  chain: string[];
  /** One entry per item, in item order. */
  results: BatchItemResult<K>[];
  /** The signed items only. */
  succeeded: Extract<BatchItemResult<K>, { ok: true }>[];
  /** The failed items only, each with its error. */
  failures: Extract<BatchItemResult<K>, { ok: false }>[];
}

export interface SignBatchOptions<K = string> extends Omit<SignOptions, 'timeoutMs'> {
  /** Called once per item, in order, as the token signs. */
  onProgress?: (progress: BatchProgress<K>) => void;
  /**
   * How often the agent reports progress, in ms (default 50): it then sends one event for all
   * items finished since the last one (the SDK still calls onProgress once per item), so a fast
   * token is not slowed down by a message per signature. 0: one event per item.
   */
  progressIntervalMs?: number;
  /** Called with the batch id as soon as the request is sent (for cancel()). */
  onStart?: (batchId: RequestId) => void;
  /** Aborting cancels the batch (batch.cancel); the summary then says which items were signed. */
  signal?: AbortSignal;
  /**
   * Longest silence from the agent while the batch waits for the dialog or runs (default
   * 180 000 ms; every progress event restarts it). On expiry the SDK cancels the batch and
   * rejects with TIMEOUT.
   */
  idleTimeoutMs?: number;
}

export interface TokenInfo {
  label?: string;
  serial?: string;
  manufacturer?: string;
  model?: string;
  module?: string;
}

export interface TokenEvent {
  token: TokenInfo;
}

export interface ConnectionClosed {
  code: number;
  reason: string;
  /** True when close() was called by the page. */
  byClient: boolean;
}

/** Events a client emits. */
export interface ClientEvents {
  'token.inserted': TokenEvent;
  'token.removed': TokenEvent;
  'pair.code': PairCode & { id: RequestId };
  'batch.progress': { id: RequestId; done: number; total: number; index: number; ok: boolean; error?: KysoError };
  /** The socket closed: pending requests were rejected with CONNECTION_LOST. */
  close: ConnectionClosed;
  /** Any event from the agent, known or not (forward compatibility). */
  event: { event: string; id?: RequestId; params: Record<string, unknown> };
}
