/**
 * The client: one WebSocket to the local kyso-agent (docs/protocol.md). Requests carry integer
 * ids; each gets exactly one answer or a local TIMEOUT / CONNECTION_LOST. Nothing is ever resent:
 * a signing request whose answer was lost is reported as such, never repeated behind the page's
 * back (the user approved it once; a second signature needs a second approval).
 */
import { KysoError } from './errors.js';
import { blockingCode, localNetworkAccess, type LocalNetworkAccess } from './lna.js';
import { fromBase64, normalizeDigest, toBase64 } from './encoding.js';
import { checkDocumentItem, documentBytes, documentWire, sha256Hex } from './documents.js';
import type {
  BatchProgress,
  BatchSummary,
  CmsItem,
  DocumentBatchSummary,
  DocumentInput,
  DocumentItem,
  DocumentOptions,
  HashInput,
  PdfItem,
  SignDocumentResult,
  SignedDocument,
  TransferProgress,
  UploadResult,
  XmlItem,
  ClientEvents,
  Credential,
  HashItem,
  HelloResult,
  ListCredentialsOptions,
  PairCode,
  PairResult,
  RemoteService,
  RequestId,
  Role,
  SignBatchOptions,
  SignOptions,
  SignResult,
} from './types.js';

export const VERSION = '0.1.0';
/** The agent's default port, then its fallbacks (docs/protocol.md section 1). */
export const DEFAULT_PORTS: readonly number[] = [19587, 19588, 19589];
/** Protocol versions this SDK speaks. */
export const PROTOCOLS: readonly number[] = [1];

const ROLES: readonly Role[] = ['teacher', 'principal', 'seal'];
const INTERACTIVE_TIMEOUT_MS = 180_000; // the agent's approval_timeout (120 s) plus signing time
/** batch.progress coalesced by the agent at most this often (progressInterval, ms). */
const PROGRESS_INTERVAL_MS = 50;

/**
 * One batch.progress event as the items it reports, in order. A coalesced event (the agent
 * got `progressInterval`) covers items `from`..`index`, each signed unless listed in `failed`;
 * a per-item event covers `index` alone.
 */
function progressItems(
  params: Record<string, unknown>,
): { index: number; ok: boolean; error?: unknown; signature?: string }[] {
  const last = Number(params.index);
  if (!Number.isInteger(last) || last < 0) return [];
  if (params.from === undefined) {
    return [{ index: last, ok: params.ok === true, ...(params.error !== undefined ? { error: params.error } : {}) }];
  }
  const first = Number(params.from);
  if (!Number.isInteger(first) || first < 0 || first > last) return [];
  const failed = new Map<number, unknown>();
  if (Array.isArray(params.failed)) {
    for (const f of params.failed) {
      if (isObject(f)) failed.set(Number(f.index), f.error);
    }
  }
  // With signaturesInEvents the event also carries each signed item's signature.
  const signatures = new Map<number, string>();
  if (Array.isArray(params.signatures)) {
    for (const s of params.signatures) {
      if (isObject(s) && typeof s.signature === 'string') signatures.set(Number(s.index), s.signature);
    }
  }
  const out: { index: number; ok: boolean; error?: unknown; signature?: string }[] = [];
  for (let i = first; i <= last; i++) {
    const signature = signatures.get(i);
    out.push(
      failed.has(i)
        ? { index: i, ok: false, error: failed.get(i) }
        : { index: i, ok: true, ...(signature !== undefined ? { signature } : {}) },
    );
  }
  return out;
}

/** The constructor the SDK opens sockets with: the browser's WebSocket, or a compatible one. */
export type WebSocketConstructor = new (url: string) => WebSocket;

export interface ConnectOptions {
  /** Ports to try in order (default 19587, 19588, 19589). */
  ports?: readonly number[];
  /** Loopback host (default "127.0.0.1"; "localhost" and "[::1]" are accepted by the agent too). */
  host?: string;
  /** false: ws:// only (default); true: wss:// only; "both": wss:// first, then ws://. */
  secure?: boolean | 'both';
  /** Per-port time to open the socket (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Timeout for non-interactive requests: hello, credentials.list, batch.cancel (default 15 000 ms). */
  requestTimeoutMs?: number;
  /** Language of the agent's dialogs for this connection (default "vi"). */
  language?: 'vi' | 'en';
  /** Send `hello` on connect and keep its result in `client.info` (default true). */
  hello?: boolean;
  /** Largest message the SDK sends; bigger batches are split into batch.items (default 512 KiB). */
  maxMessageBytes?: number;
  /** A WebSocket implementation (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /**
   * Called before the first attempt when the browser will ask the user whether this page may
   * reach the agent (Local Network Access `prompt`): show "click Allow" next to the question.
   */
  onLocalNetworkPrompt?: (lna: LocalNetworkAccess) => void;
  /** How long the first attempt waits while the browser's question may be open (default 60 000 ms). */
  permissionTimeoutMs?: number;
}

type EventName = keyof ClientEvents;
type Listener<E extends EventName> = (event: ClientEvents[E]) => void;

interface Pending {
  method: string;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: KysoError) => void;
  timeoutMs: number;
  timer?: ReturnType<typeof setTimeout> | undefined;
  /** Restart the timeout on each event for this request (batches). */
  resetOnEvent: boolean;
  onEvent?: ((event: string, params: Record<string, unknown>) => void) | undefined;
  onTimeout?: (() => void) | undefined;
}

interface RequestOptions {
  id?: number;
  timeoutMs?: number;
  resetOnEvent?: boolean;
  onEvent?: (event: string, params: Record<string, unknown>) => void;
  onTimeout?: () => void;
}

type WireItem = { type: 'hash'; hash: string; hashAlgorithm: string; title: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Turns the agent's error object (or anything else) into a KysoError. */
export function errorFromWire(wire: unknown, requestId?: RequestId): KysoError {
  if (!isObject(wire) || typeof wire.code !== 'string') {
    return new KysoError({
      code: 'PROTOCOL_ERROR',
      detail: 'error without a code',
      requestId: requestId === undefined ? undefined : String(requestId),
      data: wire,
    });
  }
  const message = isObject(wire.message) ? wire.message : {};
  return new KysoError({
    code: wire.code,
    messageVi: typeof message.vi === 'string' ? message.vi : undefined,
    messageEn: typeof message.en === 'string' ? message.en : undefined,
    detail: typeof wire.detail === 'string' ? wire.detail : undefined,
    retriable: typeof wire.retriable === 'boolean' ? wire.retriable : undefined,
    requestId: requestId === undefined ? undefined : String(requestId),
    data: wire,
  });
}

function protocolError(detail: string, data?: unknown): KysoError {
  return new KysoError({ code: 'PROTOCOL_ERROR', detail, data });
}

function badRequest(detail: string): KysoError {
  return new KysoError({ code: 'BAD_REQUEST', detail });
}

function checkRole(role: unknown): asserts role is Role {
  if (!ROLES.includes(role as Role)) throw badRequest(`role must be one of ${ROLES.join(', ')}`);
}

function toWireItem(item: HashItem<unknown>): WireItem {
  if (!isObject(item)) throw badRequest('an item must be an object');
  if (item.type !== undefined && item.type !== 'hash') {
    throw new KysoError({ code: 'NOT_SUPPORTED', detail: `item type ${String(item.type)}` });
  }
  if (typeof item.title !== 'string' || item.title.length === 0) {
    throw badRequest('every item needs a title: it is what the user sees in Kyso’s dialog');
  }
  const { hash, hashAlgorithm } = normalizeDigest(item.hash, item.hashAlgorithm);
  // The agent's limit is 200 characters; cut on a code point, never inside a surrogate pair.
  const title = Array.from(item.title).slice(0, 200).join('');
  return { type: 'hash', hash, hashAlgorithm, title };
}

function signingParams(opts: SignOptions | SignBatchOptions<unknown>): Record<string, unknown> {
  if (!isObject(opts)) throw badRequest('options with a role are required');
  checkRole(opts.role);
  const params: Record<string, unknown> = { role: opts.role };
  if (opts.credentialId !== undefined) params.credentialId = opts.credentialId;
  if (opts.algorithm !== undefined) params.algorithm = opts.algorithm;
  if (opts.signatureEncoding !== undefined) params.signatureEncoding = opts.signatureEncoding;
  return params;
}

const utf8 = new TextEncoder();

/** Splits items so that each message stays under `budget` bytes of JSON. */
function chunkItems<T>(items: T[], budget: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const n = utf8.encode(JSON.stringify(item)).length + 1;
    if (current.length > 0 && size + n > budget) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += n;
  }
  chunks.push(current);
  return chunks;
}

/** A batch in flight: the summary's promise, with the batch id to cancel it. */
export type BatchPromise<K> = Promise<BatchSummary<K>> & { readonly batchId: RequestId };
export type DocumentBatchPromise<K> = Promise<DocumentBatchSummary<K>> & { readonly batchId: RequestId };

export type SignDocumentsOptions<K = string> = Omit<SignBatchOptions<K>, 'onProgress'> &
  DocumentOptions & {
    /** Called once per document, in order, as the agent signs. */
    onProgress?: (progress: BatchProgress<K, DocumentItem<K>>) => void;
  };

function pick<T extends object>(from: T, keys: readonly string[]): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = (from as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as Partial<T>;
}
const pickXml = <K>(o: Omit<XmlItem<K>, 'type' | 'document'>) =>
  pick(o, ['title', 'reference', 'parent', 'container', 'signatureId', 'profile', 'key']) as Omit<XmlItem<K>, 'type' | 'document'>;
const pickPdf = <K>(o: Omit<PdfItem<K>, 'type' | 'document'>) =>
  pick(o, ['title', 'level', 'fieldName', 'reason', 'location', 'visible', 'key']) as Omit<PdfItem<K>, 'type' | 'document'>;
const pickCms = <K>(o: Omit<CmsItem<K>, 'type' | 'document' | 'hash' | 'hashAlgorithm'>) =>
  pick(o, ['title', 'detached', 'level', 'key']) as Omit<CmsItem<K>, 'type' | 'document' | 'hash' | 'hashAlgorithm'>;

/** One item's entry in a batch summary: signed with what `S` adds, or failed with its error. */
type ItemResult<I, S> = ({ index: number; item: I; ok: true } & S) | { index: number; item: I; ok: false; error: KysoError };

/** A batch summary over items `I` whose signed entries carry `S` (hash batches and document batches). */
type Summary<I, S> = Omit<BatchSummary<unknown>, 'results' | 'succeeded' | 'failures'> & {
  results: ItemResult<I, S>[];
  succeeded: Extract<ItemResult<I, S>, { ok: true }>[];
  failures: Extract<ItemResult<I, S>, { ok: false }>[];
};

/**
 * The page's summary from the agent's: exactly one entry per item, in item order (an item the
 * agent left out fails with PROTOCOL_ERROR). `signed` turns a result the agent reported signed
 * into what the entry carries; when it throws, that item fails with the error.
 */
async function batchSummary<I, S>(
  batchId: RequestId,
  items: readonly I[],
  wire: Record<string, unknown>,
  signed: (result: Record<string, unknown>) => S | Promise<S>,
): Promise<Summary<I, S>> {
  if (!Array.isArray(wire.results)) throw protocolError('batch summary without results', wire);
  const byIndex = new Map<number, ItemResult<I, S>>();
  for (const r of wire.results as unknown[]) {
    if (!isObject(r) || typeof r.index !== 'number') continue;
    const item = items[r.index];
    if (!item || byIndex.has(r.index)) continue;
    if (r.ok === true) {
      try {
        byIndex.set(r.index, { index: r.index, item, ok: true, ...(await signed(r)) });
      } catch (e) {
        const error = e instanceof KysoError ? e : protocolError(String(e));
        byIndex.set(r.index, { index: r.index, item, ok: false, error });
      }
    } else {
      byIndex.set(r.index, { index: r.index, item, ok: false, error: errorFromWire(r.error ?? { code: 'PROTOCOL_ERROR' }, batchId) });
    }
  }
  const results = items.map(
    (item, index): ItemResult<I, S> =>
      byIndex.get(index) ?? { index, item, ok: false, error: protocolError(`the summary has no result for item ${index}`) },
  );
  const succeeded = results.filter((r): r is Extract<ItemResult<I, S>, { ok: true }> => r.ok);
  const failures = results.filter((r): r is Extract<ItemResult<I, S>, { ok: false }> => !r.ok);
  return {
    batchId,
    total: items.length,
    signed: succeeded.length,
    failed: failures.length,
    cancelled: wire.cancelled === true,
    credentialId: String(wire.credentialId ?? ''),
    algorithm: wire.algorithm as BatchSummary['algorithm'],
    certificate: String(wire.certificate ?? ''),
    chain: Array.isArray(wire.chain) ? (wire.chain as string[]) : [],
    results,
    succeeded,
    failures,
  };
}

export class KysoClient {
  /** The socket's URL, e.g. ws://127.0.0.1:19587/ */
  readonly url: string;
  readonly port: number;
  /** The last `hello` result (connect() sends one unless told not to). */
  info: HelloResult | undefined;

  readonly #ws: WebSocket;
  readonly #options: ConnectOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #listeners = new Map<EventName, Set<Listener<EventName>>>();
  #nextId = 1;
  #closedByClient = false;
  #remoteServices: RemoteService[] = [];

  /** Use connect(); this wraps a socket that is already open. */
  constructor(ws: WebSocket, url: string, port: number, options: ConnectOptions = {}) {
    this.#ws = ws;
    this.url = url;
    this.port = port;
    this.#options = options;
    ws.addEventListener('message', (e: MessageEvent) => this.#onMessage(e.data));
    ws.addEventListener('close', (e: CloseEvent) => this.#onClose(e.code, e.reason));
  }

  /** True while the socket is open. */
  get connected(): boolean {
    return this.#ws.readyState === 1; // OPEN
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends EventName>(name: E, listener: Listener<E>): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<EventName>);
    return () => this.off(name, listener);
  }

  off<E extends EventName>(name: E, listener: Listener<E>): void {
    this.#listeners.get(name)?.delete(listener as Listener<EventName>);
  }

  /** Versions, capabilities and whether this page's origin is paired. */
  async hello(): Promise<HelloResult> {
    const result = await this.request('hello', {
      protocols: [...PROTOCOLS],
      client: `kyso-agent-client/${VERSION}`,
      language: this.#options.language ?? 'vi',
    });
    if (result.agent !== 'kyso-agent' || !PROTOCOLS.includes(result.protocol as number)) {
      throw protocolError(`not a compatible kyso-agent (agent ${String(result.agent)}, protocol ${String(result.protocol)})`, result);
    }
    if (!isObject(result.capabilities)) result.capabilities = {};
    this.info = result as unknown as HelloResult;
    return this.info;
  }

  /**
   * Pairs this page's origin. `onCode` receives the code to show in the page while Kyso's own
   * dialog shows the same code; the promise resolves when the user confirms there (rejects with
   * USER_CANCELLED or TIMEOUT otherwise). An origin already paired resolves at once, without code.
   */
  async pair(options: { onCode?: (code: PairCode) => void; timeoutMs?: number } = {}): Promise<PairResult> {
    let code: string | undefined;
    const result = await this.request('pair', {}, {
      timeoutMs: options.timeoutMs ?? INTERACTIVE_TIMEOUT_MS,
      onEvent: (event, params) => {
        if (event !== 'pair.code' || typeof params.code !== 'string') return;
        code = params.code;
        const expiresIn = typeof params.expiresIn === 'number' ? params.expiresIn : 0;
        options.onCode?.({ code, expiresIn });
      },
    });
    if (result.paired !== true) throw protocolError('pair answered without paired: true', result);
    if (this.info) this.info = { ...this.info, paired: true };
    const out: PairResult = { paired: true, origin: String(result.origin ?? '') };
    if (code !== undefined) out.code = code;
    return out;
  }

  /** Credentials present now, filtered by role, kind and validity. */
  async listCredentials(filter: ListCredentialsOptions = {}): Promise<Credential[]> {
    const params: Record<string, unknown> = {};
    if (filter.role !== undefined) {
      checkRole(filter.role);
      params.role = filter.role;
    }
    if (filter.kind !== undefined) params.kind = filter.kind;
    if (filter.validNow !== undefined) params.validNow = filter.validNow;
    if (filter.signIn !== undefined) params.signIn = filter.signIn;
    const result = await this.request('credentials.list', params, filter.signIn ? { timeoutMs: INTERACTIVE_TIMEOUT_MS } : {});
    if (!Array.isArray(result.credentials)) throw protocolError('credentials.list without credentials', result);
    this.#remoteServices = Array.isArray(result.remoteServices) ? (result.remoteServices as RemoteService[]) : [];
    return result.credentials as Credential[];
  }

  /**
   * The remote signing services IT configured in the agent, as the last listCredentials() saw
   * them (empty when none is configured). No request of its own.
   */
  get remoteServices(): RemoteService[] {
    return this.#remoteServices;
  }

  /**
   * Signs one digest in a role. The user approves (and types the PIN) in Kyso's dialog. Sent
   * exactly once: a lost answer is CONNECTION_LOST / TIMEOUT, never a silent retry.
   */
  async sign<K>(item: HashItem<K>, options: SignOptions): Promise<SignResult> {
    const params = { ...signingParams(options), item: toWireItem(item) };
    const result = await this.request('sign', params, {
      timeoutMs: options.timeoutMs ?? INTERACTIVE_TIMEOUT_MS,
    });
    for (const key of ['signature', 'certificate', 'credentialId', 'algorithm'] as const) {
      if (typeof result[key] !== 'string') throw protocolError(`sign result without ${key}`, result);
    }
    if (!Array.isArray(result.chain)) result.chain = [];
    return result as unknown as SignResult;
  }

  /**
   * Signs many digests in one role with one approval and one PIN entry. Progress arrives per
   * item; the summary lists exactly which items were signed and which failed with which error.
   * The promise rejects only when nothing was signed (dialog cancelled, wrong PIN, no
   * credential...) or the answer was lost (CONNECTION_LOST / TIMEOUT: `error.data.progress` then
   * says which indexes the agent had reported signed).
   */
  signBatch<K>(items: readonly HashItem<K>[], options: SignBatchOptions<K>): BatchPromise<K> {
    const batchId = this.#nextId++;
    const run = async (): Promise<BatchSummary<K>> => {
      if (!Array.isArray(items) || items.length === 0) throw badRequest('a batch needs at least one item');
      const wire = items.map((item) => toWireItem(item));
      // Signatures travel with the progress events, so the summary stays small.
      const inEvents = this.info?.capabilities.signaturesInEvents === true;
      const result = await this.#runBatch(batchId, items, wire, options, inEvents);
      return await batchSummary(batchId, items, result, (r) => {
        if (typeof r.signature !== 'string') throw errorFromWire(r.error ?? { code: 'PROTOCOL_ERROR' }, batchId);
        return { signature: r.signature };
      });
    };
    return Object.assign(run(), { batchId });
  }

  /** batch.sign (+ batch.items for big batches) with progress, cancel and abort; the raw summary. */
  async #runBatch<I>(
    batchId: number,
    items: readonly I[],
    wire: Record<string, unknown>[],
    options: Omit<SignBatchOptions<unknown>, 'onProgress'> & {
      onProgress?: (progress: BatchProgress<unknown, I>) => void;
    },
    signaturesInEvents = false,
  ): Promise<Record<string, unknown>> {
    {
      const common = signingParams(options);
      if (options.signal?.aborted) throw new KysoError({ code: 'ABORTED', detail: 'aborted before sending' });

      const budget = (this.#options.maxMessageBytes ?? 512 * 1024) - 1024;
      const chunks = chunkItems(wire, Math.max(budget, 1024));
      const okIndexes: number[] = [];
      const failedIndexes: number[] = [];
      const cancelQuietly = () => {
        this.cancel(batchId).catch(() => undefined);
      };

      const interval = options.progressIntervalMs ?? PROGRESS_INTERVAL_MS;
      const inEvents = signaturesInEvents && interval > 0;
      const progressParams =
        interval > 0
          ? {
              progressInterval: Math.min(Math.round(interval), 60_000),
              ...(inEvents ? { signaturesInEvents: true } : {}),
            }
          : {};
      const signatures = new Map<number, string>();
      const summary = this.request(
        'batch.sign',
        { ...common, ...progressParams, total: items.length, items: chunks[0] },
        {
          id: batchId,
          timeoutMs: options.idleTimeoutMs ?? INTERACTIVE_TIMEOUT_MS,
          resetOnEvent: true,
          onTimeout: cancelQuietly,
          onEvent: (event, params) => {
            if (event !== 'batch.progress') return;
            // One call per item, in order, whether the agent sent this item alone or coalesced.
            for (const r of progressItems(params)) {
              const item = items[r.index];
              if (!item) continue;
              (r.ok ? okIndexes : failedIndexes).push(r.index);
              if (r.signature !== undefined) signatures.set(r.index, r.signature);
              const progress = {
                batchId,
                done: r.index + 1,
                total: Number(params.total),
                index: r.index,
                ok: r.ok,
                item,
                ...(r.error !== undefined ? { error: errorFromWire(r.error, batchId) } : {}),
                ...(r.signature !== undefined ? { signature: r.signature } : {}),
              };
              try {
                options.onProgress?.(progress);
              } catch (e) {
                setTimeout(() => {
                  throw e;
                });
              }
            }
          },
        },
      );
      // Awaited below; meanwhile keep its error (it explains a failing batch.items best).
      let refused: unknown;
      summary.catch((e: unknown) => {
        refused = e;
      });

      const onAbort = () => cancelQuietly();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        options.onStart?.(batchId);
        for (const chunk of chunks.slice(1)) {
          try {
            await this.request('batch.items', { batchId, items: chunk });
          } catch (e) {
            if (refused !== undefined) throw refused;
            cancelQuietly();
            throw e;
          }
        }
        let result: Record<string, unknown>;
        try {
          result = await summary;
        } catch (e) {
          if (e instanceof KysoError && (e.code === 'CONNECTION_LOST' || e.code === 'TIMEOUT')) {
            throw new KysoError({
              code: e.code,
              messageVi: e.messageVi,
              messageEn: e.messageEn,
              detail: e.detail,
              requestId: String(batchId),
              data: { batchId, progress: { ok: okIndexes, failed: failedIndexes, total: items.length } },
            });
          }
          throw e;
        }
        // The summary names every signed item; signatures that came in events join it here.
        if (signatures.size > 0 && Array.isArray(result.results)) {
          for (const r of result.results) {
            if (isObject(r) && r.ok === true && r.signature === undefined) {
              const signature = signatures.get(Number(r.index));
              if (signature !== undefined) r.signature = signature;
            }
          }
        }
        return result;
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    }
  }

  // ---- documents (xml, pdf, cms) ---------------------------------------------------------------

  /**
   * Uploads a document in chunks (upload.begin / upload.chunk / upload.end); the agent checks
   * the size and SHA-256. The upload lives on this connection until releaseUpload() or close.
   */
  async upload(input: DocumentInput, options: { onProgress?: (p: TransferProgress) => void } = {}): Promise<UploadResult> {
    const bytes = await documentBytes(input);
    const sha256 = await sha256Hex(bytes);
    const begin = await this.request('upload.begin', { size: bytes.length, sha256 });
    const uploadId = String(begin.uploadId);
    // Each chunk's message (base64 + envelope) stays within maxMessageBytes.
    const budget = Math.floor((((this.#options.maxMessageBytes ?? 512 * 1024) - 1024) * 3) / 4);
    const chunk = Math.max(1024, Math.min(Number(begin.chunkSize) || budget, budget));
    let offset = 0;
    try {
      while (offset < bytes.length) {
        const n = Math.min(chunk, bytes.length - offset);
        await this.request('upload.chunk', { uploadId, offset, data: toBase64(bytes.subarray(offset, offset + n)) });
        offset += n;
        options.onProgress?.({ done: offset, total: bytes.length });
      }
      const end = await this.request('upload.end', { uploadId });
      return { uploadId, size: Number(end.size), sha256: String(end.sha256) };
    } catch (e) {
      this.#releaseQuietly([uploadId]);
      throw e;
    }
  }

  /** Frees an upload on the agent (they are also freed when the connection closes). */
  async releaseUpload(uploadId: string): Promise<boolean> {
    const r = await this.request('upload.abort', { uploadId });
    return r.aborted === true;
  }

  /** Frees uploads on the agent without waiting; a failure to free leaves them to the close. */
  #releaseQuietly(uploadIds: readonly string[]): void {
    for (const u of uploadIds) this.releaseUpload(u).catch(() => undefined);
  }

  /** Fetches a signed document the agent kept for download (download.chunk), then releases it. */
  async download(downloadId: string, options: { sha256?: string; onProgress?: (p: TransferProgress) => void; size?: number } = {}): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let offset = 0;
    try {
      for (;;) {
        const r = await this.request('download.chunk', { downloadId, offset });
        if (typeof r.data !== 'string') throw protocolError('download.chunk without data', r);
        const part = fromBase64(r.data);
        parts.push(part);
        offset += part.length;
        options.onProgress?.({ done: offset, total: options.size ?? offset });
        if (r.eof === true) break;
        if (part.length === 0) throw protocolError('download.chunk returned nothing before eof', r);
      }
    } finally {
      this.request('download.end', { downloadId }).catch(() => undefined);
    }
    const out = new Uint8Array(offset);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    if (options.sha256 !== undefined && (await sha256Hex(out)) !== options.sha256) {
      throw protocolError(`download ${downloadId}: SHA-256 differs from the agent's`);
    }
    return out;
  }

  /**
   * Signs one document (XML-DSig/XAdES, PAdES or CAdES) in a role, after the user approves it
   * in Kyso's dialog (which shows its type and title). Large documents are uploaded in chunks
   * and large results downloaded the same way; the returned bytes are checked against the
   * agent's SHA-256.
   */
  async signDocument<K>(item: DocumentItem<K>, options: SignOptions & DocumentOptions): Promise<SignDocumentResult> {
    const params = signingParams(options);
    const { wire, uploads } = await this.#prepareDocuments([item], options);
    try {
      const result = await this.request('sign', { ...params, item: wire[0] }, {
        timeoutMs: options.timeoutMs ?? INTERACTIVE_TIMEOUT_MS,
      });
      const doc = await this.#signedDocument(result);
      return {
        ...doc,
        algorithm: result.algorithm as SignDocumentResult['algorithm'],
        credentialId: String(result.credentialId ?? ''),
        certificate: String(result.certificate ?? ''),
        chain: Array.isArray(result.chain) ? (result.chain as string[]) : [],
      };
    } finally {
      this.#releaseQuietly(uploads);
    }
  }

  /** An XML transcript: `reference` is the Id of the element signed (see XmlItem). */
  signXml<K>(
    xml: string | DocumentInput,
    options: SignOptions & DocumentOptions & Omit<XmlItem<K>, 'type' | 'document'>,
  ): Promise<SignDocumentResult> {
    return this.signDocument({ ...pickXml(options), type: 'xml', document: xml }, options);
  }

  /** A PDF, PAdES by incremental update (earlier signatures stay valid). */
  signPdf<K>(
    pdf: DocumentInput,
    options: SignOptions & DocumentOptions & Omit<PdfItem<K>, 'type' | 'document'>,
  ): Promise<SignDocumentResult> {
    return this.signDocument({ ...pickPdf(options), type: 'pdf', document: pdf }, options);
  }

  /** CAdES over bytes (`document`) or over a digest (`hash`), detached by default. */
  signCms<K>(
    content: { document: string | DocumentInput } | { hash: HashInput; hashAlgorithm?: NonNullable<HashItem['hashAlgorithm']> },
    options: SignOptions & DocumentOptions & Omit<CmsItem<K>, 'type' | 'document' | 'hash' | 'hashAlgorithm'>,
  ): Promise<SignDocumentResult> {
    return this.signDocument({ ...pickCms(options), ...content, type: 'cms' }, options);
  }

  /**
   * Signs many documents in one role with one approval and one PIN entry (batch.sign), e.g. a
   * class's XML or PDF transcripts. Large documents are uploaded first; the summary lists
   * exactly which documents were signed (with their bytes) and which failed with which error
   * (DOCUMENT_INVALID, DOCUMENT_ENCRYPTED, ...).
   */
  signDocuments<K>(items: readonly DocumentItem<K>[], options: SignDocumentsOptions<K>): DocumentBatchPromise<K> {
    const batchId = this.#nextId++;
    const run = async (): Promise<DocumentBatchSummary<K>> => {
      if (!Array.isArray(items) || items.length === 0) throw badRequest('a batch needs at least one item');
      signingParams(options);
      const { wire, uploads } = await this.#prepareDocuments(items, options);
      try {
        const result = await this.#runBatch(batchId, items, wire, options);
        return await batchSummary(batchId, items, result, (r) => this.#signedDocument(r));
      } finally {
        this.#releaseQuietly(uploads);
      }
    };
    return Object.assign(run(), { batchId });
  }

  async #prepareDocuments(
    items: readonly DocumentItem<unknown>[],
    options: DocumentOptions,
  ): Promise<{ wire: Record<string, unknown>[]; uploads: string[] }> {
    const threshold = options.uploadAboveBytes ?? 256 * 1024;
    const wire: Record<string, unknown>[] = [];
    const uploads: string[] = [];
    try {
      for (const [index, item] of items.entries()) {
        checkDocumentItem(item);
        if (item.type === 'cms' && item.hash !== undefined) {
          wire.push(documentWire(item, undefined));
          continue;
        }
        const doc = item.document as string | DocumentInput;
        const bytes = await documentBytes(doc);
        if (bytes.length > threshold) {
          const up = await this.upload(bytes, { onProgress: (p) => options.onUpload?.({ ...p, index }) });
          uploads.push(up.uploadId);
          wire.push(documentWire(item, { uploadId: up.uploadId }));
        } else if (typeof doc === 'string') {
          wire.push(documentWire(item, { text: doc }));
        } else {
          wire.push(documentWire(item, { bytes }));
        }
      }
    } catch (e) {
      this.#releaseQuietly(uploads);
      throw e;
    }
    return { wire, uploads };
  }

  async #signedDocument(wire: Record<string, unknown>): Promise<SignedDocument> {
    const expected = typeof wire.sha256 === 'string' ? wire.sha256 : undefined;
    let bytes: Uint8Array;
    if (typeof wire.document === 'string') {
      bytes = fromBase64(wire.document);
      if (expected !== undefined && (await sha256Hex(bytes)) !== expected) {
        throw protocolError('signed document: SHA-256 differs from the agent\'s', wire.sha256);
      }
    } else if (typeof wire.downloadId === 'string') {
      bytes = await this.download(wire.downloadId, {
        ...(expected !== undefined ? { sha256: expected } : {}),
        size: Number(wire.size ?? 0),
      });
    } else {
      throw protocolError('a document result has neither document nor downloadId', wire);
    }
    const out: SignedDocument = { document: bytes, size: bytes.length, sha256: expected ?? (await sha256Hex(bytes)) };
    if (typeof wire.signatureId === 'string') out.signatureId = wire.signatureId;
    if (typeof wire.fieldName === 'string') out.fieldName = wire.fieldName;
    return out;
  }

  /** Stops a running batch after the item being signed; false when it had already ended. */
  async cancel(batchId: RequestId): Promise<boolean> {
    const result = await this.request('batch.cancel', { batchId });
    return result.cancelled === true;
  }

  /** Closes the connection; pending requests reject with CONNECTION_LOST. */
  close(): void {
    this.#closedByClient = true;
    this.#ws.close(1000, 'client closed');
  }

  /**
   * Low-level request, for methods and item types this SDK version does not wrap yet. Resolves
   * with the `result` object, rejects with a KysoError.
   */
  request(method: string, params: Record<string, unknown>, options: RequestOptions = {}): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new KysoError({ code: 'NOT_CONNECTED', detail: `${method}: socket not open` }));
        return;
      }
      const id = options.id ?? this.#nextId++;
      const key = String(id);
      const pending: Pending = {
        method,
        resolve,
        reject,
        timeoutMs: options.timeoutMs ?? this.#options.requestTimeoutMs ?? 15_000,
        resetOnEvent: options.resetOnEvent ?? false,
        onEvent: options.onEvent,
        onTimeout: options.onTimeout,
      };
      this.#pending.set(key, pending);
      this.#arm(key, pending);
      try {
        this.#ws.send(JSON.stringify({ id, method, params }));
      } catch (e) {
        this.#settle(key);
        reject(new KysoError({ code: 'CONNECTION_LOST', detail: `${method}: send failed: ${String(e)}` }));
      }
    });
  }

  #arm(key: string, pending: Pending): void {
    clearTimeout(pending.timer);
    if (!(pending.timeoutMs > 0) || !Number.isFinite(pending.timeoutMs)) return;
    pending.timer = setTimeout(() => {
      if (this.#pending.get(key) !== pending) return;
      this.#pending.delete(key);
      try {
        pending.onTimeout?.();
      } finally {
        pending.reject(
          new KysoError({
            code: 'TIMEOUT',
            detail: `no answer to ${pending.method} within ${pending.timeoutMs} ms (not resent)`,
            requestId: key,
          }),
        );
      }
    }, pending.timeoutMs);
  }

  #settle(key: string): Pending | undefined {
    const pending = this.#pending.get(key);
    if (pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(key);
    }
    return pending;
  }

  #emit<E extends EventName>(name: E, event: ClientEvents[E]): void {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        listener(event);
      } catch (e) {
        // A page's listener must not break the SDK's message loop; surface it asynchronously.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  #onMessage(data: unknown): void {
    if (typeof data !== 'string') return; // v1 is text frames only
    let msg: unknown;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(msg)) return;

    if (typeof msg.event === 'string') {
      const params = isObject(msg.params) ? msg.params : {};
      const hasId = typeof msg.id === 'string' || typeof msg.id === 'number';
      const id = hasId ? (msg.id as RequestId) : undefined;
      if (id !== undefined) {
        const pending = this.#pending.get(String(id));
        if (pending) {
          if (pending.resetOnEvent) this.#arm(String(id), pending);
          pending.onEvent?.(msg.event, params);
        }
      }
      this.#emit('event', { event: msg.event, ...(id !== undefined ? { id } : {}), params });
      this.#emitKnown(msg.event, id, params);
      return;
    }

    if (!('id' in msg) || (!('result' in msg) && !('error' in msg))) return;
    if (msg.id === null || msg.id === undefined) return; // an answer to something unreadable
    const pending = this.#settle(String(msg.id));
    if (!pending) return; // late answer to a request that already timed out
    if (msg.error !== undefined) {
      pending.reject(errorFromWire(msg.error, msg.id as RequestId));
    } else if (isObject(msg.result)) {
      pending.resolve(msg.result);
    } else {
      pending.reject(protocolError(`${pending.method}: result is not an object`, msg));
    }
  }

  #emitKnown(event: string, id: RequestId | undefined, params: Record<string, unknown>): void {
    switch (event) {
      case 'token.inserted':
      case 'token.removed':
        this.#emit(event, { token: isObject(params.token) ? params.token : {} });
        break;
      case 'pair.code':
        if (id !== undefined && typeof params.code === 'string') {
          this.#emit('pair.code', { id, code: params.code, expiresIn: Number(params.expiresIn ?? 0) });
        }
        break;
      case 'batch.progress':
        if (id !== undefined) {
          for (const r of progressItems(params)) {
            this.#emit('batch.progress', {
              id,
              done: r.index + 1,
              total: Number(params.total),
              index: r.index,
              ok: r.ok,
              ...(r.error !== undefined ? { error: errorFromWire(r.error, id) } : {}),
            });
          }
        }
        break;
      default:
        break; // unknown events are for 'event' listeners only (forward compatibility)
    }
  }

  #onClose(code: number, reason: string): void {
    const detail =
      code === 1009 ? 'the agent closed the connection: message too big (1009)' : `socket closed (${code}${reason ? `: ${reason}` : ''})`;
    for (const [key, pending] of [...this.#pending]) {
      this.#settle(key);
      const signing = pending.method === 'sign' || pending.method === 'batch.sign';
      pending.reject(
        new KysoError({
          code: 'CONNECTION_LOST',
          detail: signing ? `${detail}; ${pending.method} outcome unknown, not resent` : detail,
          requestId: key,
        }),
      );
    }
    this.#emit('close', { code, reason, byClient: this.#closedByClient });
  }

}

function openSocket(Ctor: WebSocketConstructor, url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new Ctor(url);
    } catch (e) {
      reject(e);
      return;
    }
    const timer = setTimeout(() => {
      fail(new Error('timeout'));
      try {
        ws.close();
      } catch {
        /* already closing */
      }
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('error', onError);
      ws.removeEventListener('close', onError);
    };
    const fail = (e: unknown) => {
      cleanup();
      reject(e);
    };
    const onOpen = () => {
      cleanup();
      resolve(ws);
    };
    const onError = () => fail(new Error('closed before open'));
    ws.addEventListener('open', onOpen);
    ws.addEventListener('error', onError);
    ws.addEventListener('close', onError);
  });
}

/** Whether something answers plain HTTP on the port (the agent's GET / status). */
async function probe(url: string): Promise<boolean> {
  if (typeof fetch !== 'function') return false;
  try {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 1500);
    try {
      await fetch(url, { mode: 'no-cors', cache: 'no-store', credentials: 'omit', signal: controller.signal });
      return true;
    } finally {
      clearTimeout(timer);
    }
  } catch {
    return false;
  }
}

/**
 * Connects to the local agent: ws://127.0.0.1:19587/, then :19588, then :19589 (or the given
 * ports and schemes), and says hello. Rejects with AGENT_NOT_FOUND when nothing answers,
 * AGENT_REFUSED when an agent answers HTTP but refused the WebSocket (origin not allowed,
 * another OS user's agent: browsers do not tell pages why), or LOCAL_NETWORK_PROMPT /
 * LOCAL_NETWORK_DENIED / LOCAL_NETWORK_FRAME / LOCAL_NETWORK_INSECURE when the browser keeps the
 * page from loopback (Local Network Access; `error.data` is the {@link LocalNetworkAccess}).
 */
export async function connect(options: ConnectOptions = {}): Promise<KysoClient> {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new KysoError({ code: 'NOT_CONNECTED', detail: 'no WebSocket implementation' });
  const ports = options.ports && options.ports.length > 0 ? options.ports : DEFAULT_PORTS;
  const host = options.host ?? '127.0.0.1';
  const schemes = options.secure === 'both' ? ['wss', 'ws'] : options.secure === true ? ['wss'] : ['ws'];
  const tried: string[] = [];
  let helloError: KysoError | undefined;
  // A browser that will ask the user holds the first socket until the question is answered.
  const before = await localNetworkAccess();
  let waitForUser = before.state === 'prompt';
  if (waitForUser) options.onLocalNetworkPrompt?.(before);

  for (const scheme of schemes) {
    for (const port of ports) {
      const url = `${scheme}://${host}:${port}/`;
      tried.push(url);
      let ws: WebSocket;
      const timeoutMs = waitForUser ? (options.permissionTimeoutMs ?? 60_000) : (options.connectTimeoutMs ?? 3000);
      waitForUser = false;
      try {
        ws = await openSocket(Ctor, url, timeoutMs);
      } catch {
        continue;
      }
      const client = new KysoClient(ws, url, port, options);
      if (options.hello === false) return client;
      try {
        await client.hello();
        return client;
      } catch (e) {
        client.close();
        const err = e instanceof KysoError ? e : protocolError(String(e));
        if (err.code === 'NOT_SUPPORTED') throw err; // a Kyso agent, but no common protocol version
        helloError = err;
      }
    }
  }
  if (helloError) throw helloError;
  // The browser hides why a socket failed: a page it keeps from loopback sees what it would see
  // without an agent. Its permission state tells them apart (and the status probe below would be
  // blocked the same way).
  const lna = await localNetworkAccess();
  const blocked = blockingCode(lna);
  if (blocked) {
    throw new KysoError({
      code: blocked,
      detail: `the browser blocks this page from reaching 127.0.0.1 (Local Network Access: ${lna.permission ?? 'permission'} ${lna.state}${lna.embedded ? `, in a frame${lna.frameAllowed === false ? ' without allow="local-network-access"' : ''}` : ''}); tried ${tried.join(', ')}`,
      data: lna,
    });
  }
  for (const scheme of schemes) {
    for (const port of ports) {
      if (await probe(`${scheme === 'wss' ? 'https' : 'http'}://${host}:${port}/`)) {
        throw new KysoError({ code: 'AGENT_REFUSED', detail: `an agent answers on port ${port} but refused the WebSocket; tried ${tried.join(', ')}`, data: lna });
      }
    }
  }
  throw new KysoError({ code: 'AGENT_NOT_FOUND', detail: `tried ${tried.join(', ')}`, data: lna });
}
