/** Digest and base64 helpers (no dependencies; btoa/atob exist in browsers and Node ≥ 16). */
import { KysoError } from './errors.js';
import type { HashAlgorithm, HashInput } from './types.js';

const digestLengths: Record<HashAlgorithm, number> = { sha256: 32, sha384: 48, sha512: 64 };

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Decodes standard or URL-safe base64, padding optional. Throws on anything else. */
export function fromBase64(text: string): Uint8Array {
  let s = text.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error('not base64');
  s = s.replace(/=+$/, '');
  if (s.length % 4 === 1) throw new Error('not base64');
  s += '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) throw new Error('not hex');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function algorithmForLength(n: number): HashAlgorithm | undefined {
  return (Object.keys(digestLengths) as HashAlgorithm[]).find((a) => digestLengths[a] === n);
}

function invalid(detail: string): KysoError {
  return new KysoError({ code: 'DIGEST_INVALID', detail });
}

/**
 * Normalizes a digest to the wire form: base64 bytes plus the algorithm. A string is read as hex
 * when it is exactly twice the digest length in hex digits (so a 64-character hex SHA-256 is
 * never taken for a 48-byte base64 value), otherwise as base64.
 */
export function normalizeDigest(
  input: HashInput,
  algorithm?: HashAlgorithm,
): { hash: string; hashAlgorithm: HashAlgorithm } {
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    const s = input.trim();
    const isHex = /^[0-9a-fA-F]+$/.test(s);
    const hexFits = algorithm
      ? s.length === digestLengths[algorithm] * 2
      : algorithmForLength(s.length / 2) !== undefined;
    try {
      bytes = isHex && hexFits ? fromHex(s) : fromBase64(s);
    } catch {
      throw invalid('hash is neither hex nor base64');
    }
  } else if (input instanceof Uint8Array) {
    bytes = input;
  } else if (input instanceof ArrayBuffer) {
    bytes = new Uint8Array(input);
  } else {
    throw invalid('hash must be a Uint8Array, an ArrayBuffer or a string');
  }
  const hashAlgorithm = algorithm ?? algorithmForLength(bytes.length);
  if (!hashAlgorithm) throw invalid(`a ${bytes.length}-byte value is not a SHA-256/384/512 digest`);
  if (!(hashAlgorithm in digestLengths)) throw invalid(`unknown hashAlgorithm ${String(hashAlgorithm)}`);
  if (bytes.length !== digestLengths[hashAlgorithm]) {
    throw invalid(`${hashAlgorithm} needs ${digestLengths[hashAlgorithm]} bytes, got ${bytes.length}`);
  }
  return { hash: toBase64(bytes), hashAlgorithm };
}
