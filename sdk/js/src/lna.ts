/**
 * Local Network Access (LNA): Chromium-based browsers (Chrome 142+, WebSockets from 147, Debian's
 * Chromium 156) block a page on a public address from reaching 127.0.0.1 unless the user allowed
 * it (a permission prompt) or IT's policy (`LocalNetworkAccessAllowedForUrls`,
 * `LoopbackNetworkAllowedForUrls`) covers the page. A blocked WebSocket looks exactly like an agent
 * that is not running (close 1006); only the Permissions API tells the two apart. See
 * docs/protocol.md, "Local Network Access".
 */

/**
 * What the browser says about this page reaching the agent on loopback:
 * - `granted`: allowed (by the user or IT's policy);
 * - `prompt`: the browser asks the user when the page connects (or did, and the user has not
 *   answered or dismissed the question);
 * - `denied`: blocked (the user chose Block, site settings, or a frame not allowed by its parent);
 * - `insecure`: a plain-http page on a non-loopback address: always blocked, whatever is granted;
 * - `not-needed`: the page itself is on loopback (development), the browser does not gate it;
 * - `unsupported`: the browser has no LNA (Firefox, Safari, older Chrome) or no Permissions API.
 */
export type LocalNetworkState = 'granted' | 'prompt' | 'denied' | 'insecure' | 'not-needed' | 'unsupported';

export interface LocalNetworkAccess {
  state: LocalNetworkState;
  /** The permission name the browser answered for (`loopback-network` first, then the older `local-network-access`). */
  permission?: 'loopback-network' | 'local-network-access' | undefined;
  /** The page runs in a frame (its own top-level page is another document). */
  embedded: boolean;
  /**
   * For an embedded page: whether its parent delegated the permission (`<iframe
   * allow="local-network-access; loopback-network">`); undefined when the browser cannot tell.
   */
  frameAllowed?: boolean | undefined;
}

/** The permission names, the one for loopback first (Chromium answers it per target space). */
const PERMISSIONS = ['loopback-network', 'local-network-access'] as const;

interface BrowserGlobals {
  navigator?: { permissions?: { query(d: { name: string }): Promise<{ state: string }> } };
  location?: { protocol?: string; hostname?: string };
  isSecureContext?: boolean;
  document?: {
    permissionsPolicy?: { allowsFeature(f: string): boolean };
    featurePolicy?: { allowsFeature(f: string): boolean };
  };
  top?: unknown;
  self?: unknown;
}

function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

function frameAllowed(g: BrowserGlobals, name: string): boolean | undefined {
  const policy = g.document?.permissionsPolicy ?? g.document?.featurePolicy;
  if (!policy) return undefined;
  try {
    return policy.allowsFeature(name);
  } catch {
    return undefined;
  }
}

/**
 * Asks the browser whether this page may reach the agent on loopback, without connecting (so it
 * never shows a prompt). Pages can call it before `connect()` to explain what the browser will
 * ask; `connect()` calls it when no port answered, to tell a blocked page from a missing agent.
 */
export async function localNetworkAccess(): Promise<LocalNetworkAccess> {
  const g = globalThis as unknown as BrowserGlobals;
  let embedded = false;
  try {
    embedded = g.top !== undefined && g.top !== g.self;
  } catch {
    embedded = true; // a cross-origin parent may even refuse the comparison
  }
  const base = { embedded };
  const loc = g.location;
  if (!loc || (loc.protocol !== 'http:' && loc.protocol !== 'https:')) return { ...base, state: 'unsupported' };
  if (isLoopbackHost(loc.hostname ?? '')) return { ...base, state: 'not-needed' };
  const query = g.navigator?.permissions?.query?.bind(g.navigator.permissions);
  for (const name of PERMISSIONS) {
    if (!query) break;
    let state: string;
    try {
      state = (await query({ name })).state;
    } catch {
      continue; // this browser does not know the name (TypeError)
    }
    const allowed = embedded ? frameAllowed(g, name) : undefined;
    const found = { ...base, permission: name, frameAllowed: allowed };
    if (g.isSecureContext === false) return { ...found, state: 'insecure' };
    if (state === 'granted' || state === 'prompt' || state === 'denied') return { ...found, state };
    return { ...found, state: 'unsupported' };
  }
  // No LNA in this browser; an insecure page still cannot use ws:// to loopback in Safari, but
  // that is mixed content, not LNA: report it as unsupported and let the connection decide.
  return { ...base, state: 'unsupported' };
}

/** The SDK error code for a state that blocks the connection, or undefined when LNA is not the cause. */
export function blockingCode(lna: LocalNetworkAccess): string | undefined {
  if (lna.state === 'insecure') return 'LOCAL_NETWORK_INSECURE';
  if (lna.embedded && lna.frameAllowed === false) return 'LOCAL_NETWORK_FRAME';
  if (lna.state === 'prompt') return 'LOCAL_NETWORK_PROMPT';
  if (lna.state === 'denied') return 'LOCAL_NETWORK_DENIED';
  return undefined;
}
