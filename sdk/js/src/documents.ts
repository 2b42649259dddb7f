/**
 * Document items (xml, pdf, cms; docs/protocol.md "Document items") on the wire: bytes, SHA-256,
 * base64, and what a document item looks like once it is ready to send (inline or uploaded).
 */
import { KysoError } from './errors.js';
import { normalizeDigest, toBase64, toHex } from './encoding.js';
import type { DocumentInput, DocumentItem } from './types.js';

const utf8 = new TextEncoder();

/** The bytes of a document; a string is UTF-8 text. */
export async function documentBytes(input: string | DocumentInput): Promise<Uint8Array> {
  if (typeof input === 'string') return utf8.encode(input);
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  throw new KysoError({ code: 'BAD_REQUEST', detail: 'a document is a string, Uint8Array, ArrayBuffer or Blob' });
}

/** SHA-256, hex, with WebCrypto (browsers on http://localhost / https, Node ≥ 20). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new KysoError({ code: 'NOT_SUPPORTED', detail: 'WebCrypto (crypto.subtle) is not available on this page' });
  return toHex(new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
}

function badRequest(detail: string): KysoError {
  return new KysoError({ code: 'BAD_REQUEST', detail });
}

/** Checks a document item's shape before anything is sent (the agent checks again). */
export function checkDocumentItem(item: DocumentItem<unknown>): void {
  if (typeof item !== 'object' || item === null) throw badRequest('an item must be an object');
  if (typeof item.title !== 'string' || item.title.length === 0) {
    throw badRequest('every item needs a title: it is what the user sees in Kyso’s dialog');
  }
  switch (item.type) {
    case 'xml':
      if (typeof item.reference !== 'string' || item.reference.length === 0) {
        throw badRequest('an xml item needs reference: the Id of the element to sign');
      }
      if (item.document === undefined) throw badRequest('an xml item needs its document');
      break;
    case 'pdf':
      if (item.document === undefined || typeof item.document === 'string') {
        throw badRequest('a pdf item needs its document as bytes (Uint8Array, ArrayBuffer or Blob)');
      }
      break;
    case 'cms':
      if ((item.document === undefined) === (item.hash === undefined)) {
        throw badRequest('a cms item needs exactly one of document or hash');
      }
      if (item.hash !== undefined && item.detached === false) throw badRequest('an attached CMS needs the document');
      break;
    default:
      throw new KysoError({ code: 'NOT_SUPPORTED', detail: `item type ${String((item as { type?: unknown }).type)}` });
  }
}

/**
 * The wire form of a document item. `content` is its bytes (sent inline as base64, or as text for
 * a string), or an uploadId when the SDK uploaded it first.
 */
export function documentWire(
  item: DocumentItem<unknown>,
  content: { bytes: Uint8Array } | { text: string } | { uploadId: string } | undefined,
): Record<string, unknown> {
  const title = Array.from(item.title).slice(0, 200).join('');
  const wire: Record<string, unknown> = { type: item.type, title };
  if (content && 'uploadId' in content) wire.uploadId = content.uploadId;
  else if (content && 'text' in content) wire.text = content.text;
  else if (content) wire.document = toBase64(content.bytes);
  const copy = (key: string, value: unknown) => {
    if (value !== undefined) wire[key] = value;
  };
  switch (item.type) {
    case 'xml':
      copy('reference', item.reference);
      copy('parent', item.parent);
      copy('container', item.container);
      copy('signatureId', item.signatureId);
      copy('profile', item.profile);
      break;
    case 'pdf':
      copy('level', item.level);
      copy('fieldName', item.fieldName);
      copy('reason', item.reason);
      copy('location', item.location);
      copy('visible', item.visible);
      break;
    case 'cms':
      copy('level', item.level);
      copy('detached', item.detached);
      if (item.hash !== undefined) {
        const { hash, hashAlgorithm } = normalizeDigest(item.hash, item.hashAlgorithm);
        // The agent takes a CMS item's digest as hex.
        wire.hash = toHex(Uint8Array.from(atob(hash), (c) => c.charCodeAt(0)));
        wire.hashAlgorithm = hashAlgorithm;
      }
      break;
  }
  return wire;
}
