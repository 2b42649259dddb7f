// One page's WebSocket to kyso-agent, for the Node benchmarks (bench/web/hostile-page.mjs,
// bench/soak/soak.mjs): a chosen Origin, answers matched by id, a request's events to its
// handler, and never a throw on a dead socket (an answer {error: {code}} instead:
// CLIENT_TIMEOUT, SEND_FAILED, CONNECTION_LOST). Node 20's global WebSocket
// (--experimental-websocket; runWithWebSocket relaunches a script with it).

import { spawn } from 'node:child_process';

/**
 * Runs `main` with a global WebSocket, then exits with its exit code (what it left pending, such
 * as requests waiting on a dialog, does not keep the process alive). Node 20 has its WebSocket
 * client behind a flag: without it, the script runs again with the flag.
 */
export async function runWithWebSocket(main) {
  if (typeof WebSocket !== 'function') {
    const r = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', ...process.argv.slice(1)], { stdio: 'inherit' });
    r.on('exit', (code, sig) => process.exit(code ?? (sig ? 1 : 0)));
    return;
  }
  await main();
  process.exit(process.exitCode ?? 0);
}

/**
 * Resolves to the connection once open, or to null when it cannot open (refused upgrade, or no
 * answer within connectTimeoutMs: an agent that accepts TCP but never answers the upgrade must
 * not hold a client forever).
 */
export function openConn(port, origin, { onClose, connectTimeoutMs = 10_000 } = {}) {
  return new Promise((resolveConn) => {
    let ws;
    try {
      ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Origin: origin } });
    } catch {
      resolveConn(null);
      return;
    }
    const pending = new Map();
    let nextId = 1;
    const connectTimer = setTimeout(() => {
      try {
        ws.close();
      } catch {
        /* closing */
      }
      resolveConn(null);
    }, connectTimeoutMs);
    const conn = {
      ws,
      open: false,
      /** Sends raw text (a hostile page's malformed message); false when the socket is gone. */
      sendText(text) {
        try {
          ws.send(text);
          return true;
        } catch {
          return false;
        }
      },
      /** Sends a request; returns its id and a promise of its answer. */
      call(method, params, { onEvent, timeoutMs = 300_000 } = {}) {
        const id = nextId++;
        const answer = new Promise((res) => {
          const t = setTimeout(() => {
            pending.delete(id);
            res({ error: { code: 'CLIENT_TIMEOUT' } });
          }, timeoutMs);
          pending.set(id, {
            onEvent,
            done: (msg) => {
              clearTimeout(t);
              res(msg);
            },
          });
          if (!conn.sendText(JSON.stringify({ id, method, params }))) {
            pending.delete(id);
            clearTimeout(t);
            res({ error: { code: 'SEND_FAILED' } });
          }
        });
        return { id, answer };
      },
      /** The answer of one request; `opts` is call()'s options or a timeout in ms. */
      request(method, params, opts) {
        return conn.call(method, params, typeof opts === 'number' ? { timeoutMs: opts } : opts).answer;
      },
      close() {
        conn.open = false;
        try {
          ws.close();
        } catch {
          /* closed */
        }
      },
    };
    ws.addEventListener('open', () => {
      clearTimeout(connectTimer);
      conn.open = true;
      resolveConn(conn);
    });
    ws.addEventListener('message', (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      const p = msg.id !== undefined && msg.id !== null ? pending.get(msg.id) : undefined;
      if (!p) return;
      if (msg.event) p.onEvent?.(msg);
      else {
        pending.delete(msg.id);
        p.done(msg);
      }
    });
    ws.addEventListener('close', () => {
      clearTimeout(connectTimer);
      for (const p of pending.values()) p.done({ error: { code: 'CONNECTION_LOST' } });
      pending.clear();
      if (!conn.open) resolveConn(null);
      conn.open = false;
      onClose?.();
    });
    ws.addEventListener('error', () => {});
  });
}
