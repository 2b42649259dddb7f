/**
 * kyso-agent-client: the browser SDK of the Kyso signing agent (docs/protocol.md).
 *
 *   import { connect } from 'kyso-agent-client';
 *   const kyso = await connect();
 *   if (!kyso.info?.paired) await kyso.pair({ onCode: ({ code }) => show(code) });
 *   const sig = await kyso.sign({ hash, title: 'Học bạ - Nguyễn Văn A' }, { role: 'teacher' });
 */
export { connect, KysoClient, errorFromWire, DEFAULT_PORTS, PROTOCOLS, VERSION } from './client.js';
export type { BatchPromise, ConnectOptions, DocumentBatchPromise, SignDocumentsOptions, WebSocketConstructor } from './client.js';
export { localNetworkAccess } from './lna.js';
export type { LocalNetworkAccess, LocalNetworkState } from './lna.js';
export { KysoError, isKysoError, messagesFor } from './errors.js';
export type { KnownErrorCode, KysoErrorCode, KysoErrorInit } from './errors.js';
export { normalizeDigest, toBase64, fromBase64, toHex, fromHex } from './encoding.js';
export { documentBytes, sha256Hex } from './documents.js';
export type * from './types.js';
