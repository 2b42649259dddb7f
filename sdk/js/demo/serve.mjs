#!/usr/bin/env node
// Serves the demo transcript page on loopback: demo/ at /, the built SDK (dist/) at /sdk/.
//   node demo/serve.mjs [PORT]        (or KYSO_DEMO_PORT=PORT; default 19600; 0 picks a free one)
// Prints "Kyso demo: http://127.0.0.1:PORT/" once listening. Also importable: startDemoServer(),
// over https too (the Local Network Access test serves it as a public https site).
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const roots = {
  '/sdk/': resolve(here, '..', 'dist'),
  '/': here,
};
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Maps a URL path to a file under one of the roots, or null (traversal, unknown type). */
function fileFor(urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  if (path.endsWith('/')) path += 'index.html';
  for (const [prefix, root] of Object.entries(roots)) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(root, '.' + path.slice(prefix.length - 1));
    if (file !== root && !file.startsWith(root + sep)) return null;
    if (!(extname(file) in types)) return null;
    return file;
  }
  return null;
}

/**
 * Starts the static server on 127.0.0.1.
 * @param {{port?: number, host?: string, tls?: {key: Buffer, cert: Buffer}, pages?: Record<string, string>}} [options]
 *   tls: serve https with this key and certificate; pages: extra HTML pages by path (test pages).
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>}>}
 */
export function startDemoServer({ port = 19600, host = '127.0.0.1', tls, pages = {} } = {}) {
  const handler = async (req, res) => {
    const headers = {
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (Object.hasOwn(pages, url.pathname)) {
      res.writeHead(200, { ...headers, 'Content-Type': types['.html'] }).end(pages[url.pathname]);
      return;
    }
    const file = fileFor(url.pathname);
    try {
      if (!file || !(await stat(file)).isFile()) throw new Error('not found');
      const body = await readFile(file);
      res.writeHead(200, { ...headers, 'Content-Type': types[extname(file)] });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(url.pathname.startsWith('/sdk/') ? 'Không tìm thấy (đã chạy "npm run build" chưa?)\n' : 'Không tìm thấy\n');
    }
  };
  const server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolvePromise({
        url: `${tls ? 'https' : 'http'}://${host}:${actual}/`,
        port: actual,
        close: () => new Promise((done) => { server.closeAllConnections?.(); server.close(() => done()); }),
      });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const arg = process.argv[2] ?? process.env.KYSO_DEMO_PORT ?? '19600';
  const port = Number(arg);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve.mjs: not a port: ${arg}`);
    process.exit(2);
  }
  const { url } = await startDemoServer({ port });
  console.log(`Kyso demo: ${url}`);
  const stop = () => process.exit(0);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
