#!/usr/bin/env node
// A transcript server that keeps its PDFs and has the user's Kyso agent sign only their digests
// (docs/server-signing.md): plain Node `http`, no framework, no dependency. Copy it and put your
// own storage, login and routing around the three steps it shows:
//
//   1. POST /api/prepare   the page sends the signer's certificate chain (from the agent's
//                          listCredentials); the server runs `kyso prepare` on its PDFs and
//                          answers the digests as the SDK's hash items (never the states);
//   2. the page has the agent sign those digests as one batch (kyso.signBatch: one dialog, one PIN);
//   3. POST /api/embed     the page posts the signatures back; the server runs `kyso embed`
//                          and keeps the signed PDFs (GET /signed/NAME).
//
//   node server.mjs --docs DIR [--work DIR] [--port 8080] [--host 127.0.0.1] [--kyso PATH]
//                   [--role principal] [--reason "Hiệu trưởng phê duyệt học bạ"] [--location "Hà Nội"]
//
// The page is served at / (index.html, page.js) and the SDK's build (sdk/js/dist) at /sdk/; a real
// site bundles `kyso-agent-client` instead. Prints "server-signing example: http://HOST:PORT/"
// once listening. Also importable: startExampleServer(options) for tests.
import { createServer } from 'node:http';
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const sdkDist = resolve(here, '..', '..', 'dist');
const MAX_BODY = 4 * 1024 * 1024; // a class's signatures are a few hundred kB
const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/page.js': ['page.js', 'text/javascript; charset=utf-8'],
};

/** A PEM certificate from base64 DER, for `kyso prepare --cert`. */
const pem = (b64) => `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g).join('\n')}\n-----END CERTIFICATE-----\n`;

/** The signature algorithm the server prepares for: ECDSA for an EC key, else RSA PKCS#1 v1.5. */
function algorithmFor(certificateB64) {
  const cert = new X509Certificate(Buffer.from(certificateB64, 'base64'));
  return cert.publicKey.asymmetricKeyType === 'ec' ? 'ecdsa-sha256' : 'rsa-sha256';
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) throw Object.assign(new Error('request too large'), { status: 413 });
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw Object.assign(new Error('request is not JSON'), { status: 400 });
  }
}

function send(res, status, body, type = 'application/json; charset=utf-8') {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

/**
 * Starts the example server.
 * @param {{docs: string, work?: string, port?: number, host?: string, kyso?: string,
 *          role?: string, reason?: string, location?: string, kysoArgs?: string[]}} options
 *   kysoArgs: global options put before every kyso command (e.g. ['--lang', 'en']).
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>}>}
 */
export async function startExampleServer({
  docs,
  work = './kyso-work',
  port = 8080,
  host = '127.0.0.1',
  kyso = process.env.KYSO_CLI || 'kyso',
  role = 'principal',
  reason = 'Hiệu trưởng phê duyệt học bạ',
  location = '',
  kysoArgs = [],
} = {}) {
  if (!docs || !existsSync(docs)) throw new Error('--docs DIR: the folder of PDFs to sign');
  const stateKey = join(work, 'kyso-state.key'); // made by kyso prepare (mode 600); never sent out
  const signedDir = join(work, 'signed');
  await mkdir(join(work, 'batches'), { recursive: true });
  const kysoRun = (args) => run(kyso, [...kysoArgs, ...args], { maxBuffer: 64 * 1024 * 1024 });

  // Step 1: digests out. One batch folder per request: the chain, the states, digests.json.
  async function prepare(body) {
    if (typeof body.certificate !== 'string' || !Array.isArray(body.chain)) {
      throw Object.assign(new Error('certificate and chain (base64 DER) are required'), { status: 400 });
    }
    const batchId = randomBytes(12).toString('hex');
    const dir = join(work, 'batches', batchId);
    await mkdir(dir, { recursive: true });
    const certs = [body.certificate, ...body.chain];
    const certArgs = [];
    for (const [i, der] of certs.entries()) {
      const file = join(dir, `cert-${i}.pem`);
      await writeFile(file, pem(der));
      certArgs.push('--cert', file);
    }
    const algorithm = algorithmFor(body.certificate);
    const args = ['prepare', docs, ...certArgs, '--state-key', stateKey, '--states', join(dir, 'states'),
      '--alg', algorithm, '--reason', reason, '-o', join(dir, 'digests.json')];
    if (location) args.push('--location', location);
    try {
      await kysoRun(args);
    } catch (e) {
      if (e.code !== 2) throw e; // 2: some documents could not be prepared; they are listed
    }
    const prepared = JSON.parse(await readFile(join(dir, 'digests.json'), 'utf8'));
    // The page gets the hash items and the algorithm only; the states stay here.
    return {
      batchId,
      role,
      algorithm: prepared.algorithm,
      items: prepared.items.map((i) => i.item),
      failed: prepared.failed.map((f) => ({ file: basename(f.file), error: f.error })),
    };
  }

  // Step 3: signatures in. `kyso embed` checks each against its state (the right document, the
  // certificate prepared for) before it writes anything.
  async function embed(body) {
    if (typeof body.batchId !== 'string' || !/^[0-9a-f]{24}$/.test(body.batchId)) {
      throw Object.assign(new Error('unknown batch'), { status: 404 });
    }
    const dir = join(work, 'batches', body.batchId);
    if (!existsSync(join(dir, 'digests.json'))) throw Object.assign(new Error('unknown batch'), { status: 404 });
    if (!Array.isArray(body.results)) throw Object.assign(new Error('results are required'), { status: 400 });
    const signatures = {
      certificate: body.certificate,
      results: body.results.map((r) => ({ index: r.index, ok: r.ok === true, signature: r.signature })),
    };
    await writeFile(join(dir, 'signatures.json'), JSON.stringify(signatures));
    let stdout;
    try {
      ({ stdout } = await kysoRun(['embed', '--prepared', join(dir, 'digests.json'),
        '--signatures', join(dir, 'signatures.json'), '--state-key', stateKey, '--out', signedDir, '--json']));
    } catch (e) {
      if (e.code !== 2) throw e; // 2: some signatures were refused or missing; they are listed
      stdout = e.stdout;
    }
    const report = JSON.parse(stdout);
    return {
      embedded: report.embedded,
      failed: report.failed,
      files: report.files.map((f) => ({
        file: basename(f.file),
        ok: f.ok,
        ...(f.ok ? { download: `/signed/${encodeURIComponent(basename(f.output))}` } : { error: f.error }),
      })),
    };
  }

  async function documents() {
    const names = (await readdir(docs)).filter((n) => n.toLowerCase().endsWith('.pdf')).sort();
    return { documents: names.map((name) => ({ name, signed: existsSync(join(signedDir, name)) })) };
  }

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://localhost');
      if (req.method === 'GET' && STATIC[url.pathname]) {
        const [file, type] = STATIC[url.pathname];
        return send(res, 200, await readFile(join(here, file)), type);
      }
      if (req.method === 'GET' && url.pathname.startsWith('/sdk/')) {
        const name = url.pathname.slice('/sdk/'.length);
        if (!/^[\w.-]+\.js$/.test(name)) return send(res, 404, { error: 'not found' });
        return send(res, 200, await readFile(join(sdkDist, name)), 'text/javascript; charset=utf-8');
      }
      if (req.method === 'GET' && url.pathname === '/api/documents') return send(res, 200, await documents());
      if (req.method === 'POST' && url.pathname === '/api/prepare') return send(res, 200, await prepare(await readJson(req)));
      if (req.method === 'POST' && url.pathname === '/api/embed') return send(res, 200, await embed(await readJson(req)));
      if (req.method === 'GET' && url.pathname.startsWith('/signed/')) {
        const name = basename(decodeURIComponent(url.pathname.slice('/signed/'.length)));
        if (!name.toLowerCase().endsWith('.pdf') || !existsSync(join(signedDir, name))) {
          return send(res, 404, { error: 'not found' });
        }
        return send(res, 200, await readFile(join(signedDir, name)), 'application/pdf');
      }
      return send(res, 404, { error: 'not found' });
    } catch (e) {
      // kyso prints "Error [CODE]: message" on stderr: pass the code on, log the rest (it names
      // the server's paths).
      const status = e.status ?? 500;
      if (status === 500) console.error(e.stderr || e);
      const code = /\[([A-Z_]+)\]/.exec(String(e.stderr ?? ''))?.[1] ?? 'INTERNAL';
      send(res, status, { error: status === 500 ? `kyso failed (${code})` : e.message, ...(status === 500 ? { code } : {}) });
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, ok);
  });
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      docs: { type: 'string' },
      work: { type: 'string', default: './kyso-work' },
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      kyso: { type: 'string' },
      role: { type: 'string', default: 'principal' },
      reason: { type: 'string', default: 'Hiệu trưởng phê duyệt học bạ' },
      location: { type: 'string', default: '' },
    },
  });
  const s = await startExampleServer({ ...values, port: Number(values.port) });
  console.log(`server-signing example: ${s.url}`);
}
