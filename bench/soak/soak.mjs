#!/usr/bin/env node
// bench/soak: one kyso-agent under many pages for a bounded time, with faults (issue 17, item 3).
//
//   node bench/soak/soak.mjs [--build BUILD] [--duration 600] [--pages 24] [--seed N] [--token DIR]
//   node bench/soak/soak.mjs --smoke          (60 s, 20 pages, smaller batches)
//   options: --report S (30: seconds between two progress lines), --json (the result as JSON),
//            --token DIR (a tests/pki/make-demo-token.sh fixture to copy instead of a new one)
//
// What runs, all real processes on loopback (BUILD: the CMake build, default ./build):
//  - kyso-agent on a copy of the demo token through tests/fault-module (its principal key taken
//    out, so that the principal's signatures go to the remote service), the scripted pinentry as
//    the user (tests/agent/scripted-pinentry.sh), who presses Cancel in 4 dialogs of 100;
//  - kyso-appliance (tests/remote/prepare-appliance.sh) as the agent's [[remote]] service holding
//    the principal's key; killed with SIGKILL once, at 40% of the run, and started again 2 s later
//    on the same port and state;
//  - the fault module fails C_Sign at random (2 in 1000) and the token is pulled out in the middle
//    of a batch every 25 s (8 s in --smoke) and put back 2.5 s later (KYSO_FAULT_CONTROL);
//  - --pages pages (20-50), half of them allow-listed, the others pairing first (the user confirms
//    the code), each doing at random: credentials.list, a single sign, a batch of 100-2,000 hashes
//    (signatures in the coalesced events), an uploaded PDF or XML signed, a batch cancelled
//    mid-way, a batch whose page goes away mid-way; one remote batch (100-400 hashes, password,
//    PIN and OTP dialogs) at most every 35 s across all pages (the service takes each TOTP step
//    once).
// Every --report seconds: requests answered, signatures and documents delivered, errors by code,
// the agent's RSS and open file descriptors. At the end (the agent stopped, its log closed):
//  - every signature a page received verifies (the certificate's public key) and has its `ok`
//    row in the audit log; every signed document's SHA-256 has its row;
//  - every `ok` row of this run's items was received by its page, or is of a batch whose page
//    went away, after the last item that page received (signed while the page was leaving:
//    withheld, counted apart); no item has two `ok` rows or reached a page twice;
//  - `kyso audit verify` passes (and `kyso-appliance verify-audit` on the service's state);
//  - the agent's RSS and fds at the end are within 10% of the first minute's, both read at a
//    checkpoint where every page waits between two actions, connected and paired (after the
//    first minute, and at the end); the heap's share of RSS (RssAnon) is printed beside it. Not
//    checked in --smoke (first checkpoint at 20 s, last at 60 s: a cold agent).
// Pages reconnect once paired (the connection a page paired on still counts among the agent's 4
// for unpaired origins, which the next pages need to pair).
// Exit 0 when every check passes, 1 when one fails, 2 on a usage error, 3 when it overran.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, publicDecrypt, randomBytes, constants as cc, X509Certificate } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openConn, runWithWebSocket } from '../common/ws-page.mjs';
import { rng } from '../../sdk/js/demo/class-data.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');

function usage(error) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1).filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n');
  if (error) console.error(`soak: ${error}\n`);
  console.error(text);
  process.exit(error ? 2 : 0);
}

function parseArgs(argv) {
  const o = { build: join(REPO, 'build'), duration: 600, pages: 24, seed: undefined, token: undefined, smoke: false, json: false, report: 30 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--build') o.build = resolve(next());
    else if (a === '--duration') o.duration = Number(next());
    else if (a === '--pages') o.pages = Number(next());
    else if (a === '--seed') o.seed = Number(next());
    else if (a === '--token') o.token = resolve(next());
    else if (a === '--report') o.report = Number(next());
    else if (a === '--smoke') o.smoke = true;
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  if (o.smoke) Object.assign(o, { duration: 60, pages: 20 });
  if (!Number.isInteger(o.pages) || o.pages < 2 || o.pages > 50) usage('--pages must be 2-50');
  if (!Number.isFinite(o.duration) || o.duration < 20 || o.duration > 3600) usage('--duration must be 20-3600 s');
  if (!Number.isFinite(o.report) || o.report < 1) usage('--report must be >= 1 s');
  o.seed = Number.isInteger(o.seed) ? o.seed : Math.floor(Math.random() * 2 ** 31);
  return o;
}

// ---- small helpers -------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (msg) => process.stderr.write(`soak [${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
const sha256 = (buf) => createHash('sha256').update(buf).digest();
const inc = (obj, k, n = 1) => (obj[k] = (obj[k] ?? 0) + n);

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** RSS (kB; all of it, and its anonymous part: the heap) and open file descriptors of a process. */
function usageOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rssKb: NaN, anonKb: NaN, fds: NaN };
  }
}

/** A one-page PDF made here (xref offsets computed), different text each time. */
function makePdf(text) {
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  const stream = `BT /F1 14 Tf 72 770 Td (${text.replace(/[()\\]/g, '')}) Tj ET`;
  objs[3] = `<< /Length ${Buffer.byteLength(stream)} >>\nstream\n${stream}\nendstream`;
  let out = '%PDF-1.7\n';
  const offsets = [];
  objs.forEach((body, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

const DIGEST_INFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** RSA PKCS#1 v1.5 over a SHA-256 digest, checked with the certificate's public key (OpenSSL via node:crypto). */
function verifyRsa(key, digest, signature) {
  try {
    const info = publicDecrypt({ key, padding: cc.RSA_PKCS1_PADDING }, signature);
    return info.equals(Buffer.concat([DIGEST_INFO_SHA256, digest]));
  } catch {
    return false;
  }
}

// ---- the run ------------------------------------------------------------------------------------

const ALLOWED = (k) => `https://hocba-${k}.example.edu.vn`;
const PAIRED = (k) => `https://truong-${k}.example.edu.vn`;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const rand = rng(o.seed);  // the run's choices repeat from --seed (timings do not)
  const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const bins = {
    agent: join(o.build, 'agent', 'kyso-agent'),
    kyso: join(o.build, 'cli', 'kyso'),
    appliance: join(o.build, 'remote-sign', 'appliance', 'kyso-appliance'),
    fault: join(o.build, 'tests', 'fault-module', 'kyso_fault_pkcs11.so'),
  };
  for (const [k, p] of Object.entries(bins)) if (!existsSync(p)) usage(`${k}: ${p} is missing (build it first)`);
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-soak-'));
  const children = new Set();
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  };
  const limitS = o.duration + 240;
  setTimeout(() => {
    say(`did not finish within ${limitS} s: stopping`);
    cleanup();
    process.exit(3);
  }, limitS * 1000).unref();
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  process.once('SIGTERM', () => (cleanup(), process.exit(143)));
  const run = (cmd, args, env) => execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30 }).toString();
  const start = (cmd, args, env, log) => {
    const c = spawn('/bin/sh', ['-c', 'ulimit -c 0; exec "$0" "$@"', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    c.log = '';
    const keep = (d) => (c.log = (c.log + d).slice(-20_000));
    c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    c.exited = new Promise((r) => c.once('exit', (code, signal) => r({ code, signal })));
    if (log) c.exited.then(() => writeFileSync(log, c.log));
    return c;
  };

  try {
    // The fixture: a given one, or a new demo token.
    let fixture = o.token;
    if (!fixture) {
      say('making a demo token');
      fixture = join(tmp, 'fixture');
      run(join(REPO, 'tests', 'pki', 'make-demo-token.sh'), [fixture]);
    }
    const manifest = JSON.parse(readFileSync(join(fixture, 'manifest.json'), 'utf8'));
    const cred = Object.fromEntries(manifest.credentials.map((c) => {
      const der = readFileSync(c.cert_der);
      return [c.name, { ...c, id: sha256(der).toString('hex'), key: new X509Certificate(der).publicKey }];
    }));
    const keyById = new Map(Object.values(cred).map((c) => [c.id, c.key]));

    // The agent's token: a copy without the principal's key and certificate (the service has them).
    const tokenDir = join(tmp, 'token');
    mkdirSync(tokenDir);
    cpSync(join(fixture, 'tokens'), join(tokenDir, 'tokens'), { recursive: true });
    const softhsmConf = join(tokenDir, 'softhsm2.conf');
    writeFileSync(softhsmConf, `directories.tokendir = ${join(tokenDir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    for (const type of ['privkey', 'pubkey', 'cert']) {
      try {
        run('pkcs11-tool', ['--module', manifest.module, '--token-label', manifest.token_label, '--login', '--pin', manifest.user_pin, '--delete-object', '--type', type, '--id', cred.principal.id_hex ?? '02'], { SOFTHSM2_CONF: softhsmConf });
      } catch (e) {
        if (type !== 'pubkey') throw e; // a token may keep no public key object
      }
    }

    // The remote service, on a port of its own that it keeps across the restart.
    const applianceDir = join(tmp, 'appliance');
    const applianceToml = run(join(REPO, 'tests', 'remote', 'prepare-appliance.sh'), [bins.appliance, applianceDir, fixture]).trim();
    const appliancePort = await freePort();
    writeFileSync(applianceToml, readFileSync(applianceToml, 'utf8').replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${appliancePort}"`));
    const applianceEnv = { SOFTHSM2_CONF: join(applianceDir, 'softhsm2.conf') };
    const startAppliance = async () => {
      rmSync(join(applianceDir, 'port'), { force: true });
      const c = start(bins.appliance, ['--config', applianceToml, '--port-file', join(applianceDir, 'port')], applianceEnv);
      for (let i = 0; i < 300 && !existsSync(join(applianceDir, 'port')); i++) await sleep(100);
      if (!existsSync(join(applianceDir, 'port'))) throw new Error(`kyso-appliance did not start\n${c.log}`);
      return c;
    };
    let appliance = await startAppliance();

    // The agent.
    const stateDir = join(tmp, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const control = join(tmp, 'faults');
    writeFileSync(control, 'removed=0\n');
    const allowed = Array.from({ length: Math.ceil(o.pages / 2) }, (_, k) => ALLOWED(k));
    const agentToml = join(tmp, 'kyso-agent.toml');
    writeFileSync(agentToml, `[origins]\nallowed = [${allowed.map((a) => `"${a}"`).join(', ')}]\n[limits]\nmax_connections = ${o.pages + 16}\n` +
      `[[remote]]\nname = "Sở GD&ĐT - máy ký (soak)"\nurl = "https://127.0.0.1:${appliancePort}/csc/v2"\nusername = "principal"\n` +
      `ca_file = "${join(applianceDir, 'ca.crt')}"\nunavailable_wait_seconds = 20\n`);
    const agentEnv = {
      SOFTHSM2_CONF: softhsmConf,
      KYSO_FAULT_REAL_MODULE: manifest.module,
      KYSO_FAULT_CONTROL: control,
      KYSO_FAULT_SEED: String(o.seed),
      KYSO_FAULT_PRESET: 'sign_fail_permille=2',
      KYSO_PINENTRY_PIN: manifest.user_pin,
      KYSO_PINENTRY_PASSWORD: 'mật khẩu hiệu trưởng',
      KYSO_PINENTRY_TOTP: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
      KYSO_PINENTRY_CANCEL_PERCENT: '4',
      // Each OTP is the code of 60 s ago: valid in the service's window, and a newer time step
      // than the last one as long as remote batches are 35 s apart.
      KYSO_PINENTRY_OTP_STEPS: '',
      KYSO_PINENTRY_OTP: '',
      KYSO_PINENTRY_ACTION: 'ok',
      KYSO_PINENTRY_ACTION_FILE: '',
    };
    const agent = start(bins.agent, ['--config', agentToml, '--port', '0', '--module', bins.fault, '--no-system-modules', '--pinentry', join(REPO, 'tests', 'agent', 'scripted-pinentry.sh'), '--state-dir', stateDir, '--log-level', 'warn'], agentEnv, join(tmp, 'agent.log'));
    const agentPort = await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`kyso-agent did not start\n${agent.log}`)), 20_000);
      const look = () => {
        const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(agent.log);
        if (m) {
          clearTimeout(timer);
          res(Number(m[1]));
        }
      };
      agent.stdout.on('data', look);
      agent.exited.then(() => rej(new Error(`kyso-agent exited\n${agent.log}`)));
    });
    let agentDied = null;
    agent.exited.then((x) => (agentDied = x));
    say(`kyso-agent on port ${agentPort} (pid ${agent.pid}), kyso-appliance on ${appliancePort}; seed ${o.seed}, ${o.pages} pages, ${o.duration} s`);

    // ---- accounting ----
    const stats = { requests: 0, signatures: 0, documents: 0, errors: {}, itemErrors: {}, outcomes: {}, actions: {}, withheld: 0, badSignatures: 0, twiceReceived: 0, tokenPulls: 0, applianceKills: 0 };
    const items = new Map(); // digest hex -> {batch, index}
    const received = new Map(); // digest hex -> times a page got its signature
    const documents = new Map(); // signed document SHA-256 hex -> times received
    const batches = [];
    const bad = [];
    const gotSignature = (digestHex, credentialId, sigB64, where) => {
      const n = (received.get(digestHex) ?? 0) + 1;
      received.set(digestHex, n);
      if (n > 1) stats.twiceReceived += 1;
      stats.signatures += 1;
      const key = keyById.get(credentialId);
      if (!key || !verifyRsa(key, Buffer.from(digestHex, 'hex'), Buffer.from(sigB64, 'base64'))) {
        stats.badSignatures += 1;
        if (bad.length < 20) bad.push({ digestHex, credentialId, where });
      }
    };
    const answered = (r) => {
      stats.requests += 1;
      if (r.error) inc(stats.errors, r.error.code ?? 'UNKNOWN');
      return r;
    };
    let tokenBatchRunning = 0;
    let lastRemote = 0;
    const end = Date.now() + o.duration * 1000;
    let stopping = false;
    const running = () => !stopping && !agentDied;
    // Checkpoints: every page stops between two actions, connected and paired, so the agent's
    // RSS and fds are read in the same state after the first minute and at the end.
    let gate = null;
    const ready = new Set();
    const atGate = async (no, connected) => {
      if (!gate || !connected) return;
      ready.add(no);
      await gate;
      ready.delete(no);
    };
    const checkpoint = async (last) => {
      let release;
      gate = new Promise((r) => (release = r));
      const t = Date.now();
      while (ready.size < o.pages && Date.now() - t < 90_000 && !agentDied) await sleep(100);
      await sleep(1500); // the agent closes what the pages closed, its audit timer runs
      const reads = [];
      for (let k = 0; k < 3; k++, await sleep(500)) reads.push(usageOf(agent.pid));
      const at = { t: Math.round((Date.now() - t0) / 1000), pagesReady: ready.size, rssKb: Math.max(...reads.map((x) => x.rssKb)), anonKb: Math.max(...reads.map((x) => x.anonKb)), fds: Math.max(...reads.map((x) => x.fds)) };
      say(`checkpoint: ${at.pagesReady} pages idle, RSS ${(at.rssKb / 1024).toFixed(1)} MB (heap ${(at.anonKb / 1024).toFixed(1)} MB), fds ${at.fds}`);
      if (last) stopping = true;
      gate = null;
      release();
      return at;
    };

    const hashItems = (n, title) => Array.from({ length: n }, (_, i) => {
      const d = randomBytes(32);
      return { type: 'hash', hash: d.toString('base64'), hashAlgorithm: 'sha256', title: `${title} - học sinh ${i + 1}` };
    });

    /** A batch.sign; mode: "whole", "cancel" (batch.cancel mid-way) or "leave" (the page closes mid-way). */
    async function batch(conn, page, { role, credentialId, n, mode, remote }) {
      const list = hashItems(n, `Học bạ lớp ${page.no}`);
      const b = { page: page.no, mode, remote, n, credentialId, got: new Set(), last: -1, left: false, outcome: null };
      batches.push(b);
      list.forEach((it, i) => items.set(Buffer.from(it.hash, 'base64').toString('hex'), { batch: b, index: i }));
      const take = (index, sig, cid) => {
        if (b.left || sig === undefined) return;
        b.got.add(index);
        b.last = Math.max(b.last, index);
        gotSignature(Buffer.from(list[index].hash, 'base64').toString('hex'), cid, sig, { page: page.no, mode, remote, index });
      };
      if (!remote) tokenBatchRunning += 1;
      const params = { role, items: list, progressInterval: 50, signaturesInEvents: true };
      if (credentialId) params.credentialId = credentialId;
      const { id, answer } = conn.call('batch.sign', params, {
        onEvent: (ev) => {
          for (const s of ev.params?.signatures ?? []) take(s.index, s.signature, credentialId);
        },
      });
      let timer;
      if (mode !== 'whole') {
        timer = setTimeout(() => {
          if (mode === 'cancel') conn.request('batch.cancel', { batchId: id }).then(answered);
          else {
            b.left = true;
            conn.close();
          }
        }, randInt(20, 1200));
      }
      const r = answered(await answer);
      clearTimeout(timer);
      if (!remote) tokenBatchRunning -= 1;
      if (r.result) {
        for (const x of r.result.results ?? []) {
          if (x.ok && x.signature) take(x.index, x.signature, r.result.credentialId);
          if (!x.ok) inc(stats.itemErrors, x.error?.code ?? 'UNKNOWN');
        }
        b.outcome = r.result.cancelled ? 'cancelled' : 'done';
      } else b.outcome = r.error?.code;
      inc(stats.outcomes, `${mode}: ${b.outcome}`);
    }

    async function signDocument(conn, page) {
      const pdf = rand() < 0.5;
      const no = randInt(1, 1e9);
      const doc = pdf ? makePdf(`Hoc ba so ${no} - lop ${page.no}`) : Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<HocBa Id="hb-${no}"><HocSinh>Nguyễn Văn An ${no}</HocSinh><Lop>${page.no}</Lop><DiemTB>8.${no % 10}</DiemTB></HocBa>\n`);
      const begin = answered(await conn.request('upload.begin', { size: doc.length, sha256: sha256(doc).toString('hex') }));
      if (!begin.result) return;
      const uploadId = begin.result.uploadId;
      if (!answered(await conn.request('upload.chunk', { uploadId, offset: 0, data: doc.toString('base64') })).result) return;
      if (!answered(await conn.request('upload.end', { uploadId })).result) return;
      const item = pdf ? { type: 'pdf', uploadId, title: `Học bạ ${no}` } : { type: 'xml', uploadId, title: `Học bạ ${no}`, reference: `hb-${no}` };
      const r = answered(await conn.request('sign', { role: 'teacher', credentialId: cred.teacher.id, item }));
      if (r.result?.sha256) {
        documents.set(r.result.sha256, (documents.get(r.result.sha256) ?? 0) + 1);
        stats.documents += 1;
        if (r.result.document && sha256(Buffer.from(r.result.document, 'base64')).toString('hex') !== r.result.sha256) stats.badSignatures += 1;
        if (r.result.downloadId) answered(await conn.request('download.end', { downloadId: r.result.downloadId }));
      }
      answered(await conn.request('upload.abort', { uploadId }));
    }

    async function page(no) {
      const trusted = no % 2 === 0;
      const origin = trusted ? ALLOWED(no / 2) : PAIRED((no - 1) / 2);
      const p = { no, origin, paired: trusted };
      let conn = null;
      const big = o.smoke ? 500 : 2000;
      while (running()) {
        await atGate(no, conn?.open && p.paired);
        if (!running()) break;
        if (!conn?.open) {
          conn = await openConn(agentPort, origin);
          if (!conn) {
            inc(stats.errors, 'CONNECT_FAILED');
            await sleep(500);
            continue;
          }
          answered(await conn.request('hello', { protocols: [1], client: 'kyso-soak', language: rand() < 0.5 ? 'vi' : 'en' }));
          continue; // by the checkpoint's gate
        }
        if (!p.paired) {
          inc(stats.actions, 'pair');
          const r = answered(await conn.request('pair', {}));
          if (r.result?.paired) {
            // Reloaded once paired: the connection it paired on still counts among the 4 the
            // agent keeps for unpaired origins, which the other pages need to pair.
            p.paired = true;
            conn.close();
          } else await sleep(r.error?.code === 'PAIR_COOLDOWN' ? 3000 : 500);
          continue;
        }
        const x = rand();
        const teacher = rand() < 0.7;
        const credentialId = teacher ? cred.teacher.id : cred.seal.id;
        const role = teacher ? 'teacher' : 'seal';
        if (Date.now() - lastRemote > 35_000 && x < 0.1) {
          lastRemote = Date.now();
          inc(stats.actions, 'remote batch');
          // By its id: any person's certificate may sign as principal, so without it the agent
          // would take the teacher's on the token.
          await batch(conn, p, { role: 'principal', credentialId: cred.principal.id, n: randInt(100, 400), mode: 'whole', remote: true });
        } else if (x < 0.25) {
          inc(stats.actions, 'list');
          answered(await conn.request('credentials.list', rand() < 0.5 ? { role } : {}));
        } else if (x < 0.5) {
          inc(stats.actions, 'sign');
          const [it] = hashItems(1, `Học bạ lớp ${no}`);
          const digestHex = Buffer.from(it.hash, 'base64').toString('hex');
          const b = { page: no, mode: 'single', n: 1, got: new Set(), last: -1, left: false };
          items.set(digestHex, { batch: b, index: 0 });
          batches.push(b);
          const r = answered(await conn.request('sign', { role, credentialId, item: it }));
          if (r.result?.signature) {
            b.got.add(0);
            gotSignature(digestHex, r.result.credentialId, r.result.signature, { page: no, mode: 'single' });
          }
        } else if (x < 0.72) {
          inc(stats.actions, 'batch');
          await batch(conn, p, { role, credentialId, n: randInt(100, big), mode: 'whole' });
        } else if (x < 0.82) {
          inc(stats.actions, 'document');
          await signDocument(conn, p);
        } else if (x < 0.91) {
          inc(stats.actions, 'batch cancelled');
          await batch(conn, p, { role, credentialId, n: randInt(100, big), mode: 'cancel' });
        } else {
          inc(stats.actions, 'batch left');
          await batch(conn, p, { role, credentialId, n: randInt(100, big), mode: 'leave' });
        }
        await sleep(randInt(100, 1500));
      }
      conn?.close();
    }

    // ---- faults, reports ----
    const samples = [];
    const sample = () => samples.push({ t: (Date.now() - t0) / 1000, ...usageOf(agent.pid) });
    const sampler = setInterval(sample, 2000);
    const faults = (async () => {
      const every = o.smoke ? 8_000 : 25_000;
      let next = Date.now() + every;
      let killed = false;
      const killAt = Date.now() + o.duration * 400;
      while (running() && Date.now() < end) {
        await sleep(250);
        if (!killed && Date.now() >= killAt) {
          killed = true;
          stats.applianceKills += 1;
          say('killing kyso-appliance (SIGKILL); starting it again in 2 s');
          appliance.kill('SIGKILL');
          await appliance.exited;
          await sleep(2000);
          appliance = await startAppliance();
        }
        if (Date.now() >= next && tokenBatchRunning > 0) {
          next = Date.now() + every;
          stats.tokenPulls += 1;
          writeFileSync(control, 'removed=1\n');
          await sleep(2500);
          writeFileSync(control, 'removed=0\n');
        }
      }
    })();
    const report = () => {
      const u = usageOf(agent.pid);
      const errs = Object.entries(stats.errors).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
      const items = Object.entries(stats.itemErrors).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
      say(`requests ${stats.requests}, signatures ${stats.signatures}, documents ${stats.documents}, RSS ${(u.rssKb / 1024).toFixed(1)} MB, fds ${u.fds}; errors: ${errs || 'none'}; batch items failed: ${items || 'none'}`);
    };
    const reporter = setInterval(report, o.report * 1000);

    sample();
    const windowS = o.smoke ? 20 : 60;
    const checkpoints = (async () => {
      await sleep(windowS * 1000);
      const first = await checkpoint(false);
      await sleep(Math.max(0, end - Date.now()));
      return { first, last: await checkpoint(true) };
    })();
    const [cps] = await Promise.all([checkpoints, ...Array.from({ length: o.pages }, (_, k) => page(k)), faults]);
    clearInterval(reporter);
    report();
    sample();
    clearInterval(sampler);
    writeFileSync(control, 'removed=0\n');

    // ---- the end: stop everything, then read what the agent and the service wrote ----
    const usage = { first: cps.first, last: cps.last, rssFirstKb: cps.first.rssKb, rssLastKb: cps.last.rssKb, fdsFirst: cps.first.fds, fdsLast: cps.last.fds, largestRssKb: Math.max(...samples.map((x) => x.rssKb).filter(Number.isFinite)) };
    const crashed = agentDied;
    agent.kill('SIGTERM');
    await agent.exited;
    appliance.kill('SIGTERM');
    await appliance.exited;

    let verify;
    try {
      verify = JSON.parse(run(bins.kyso, ['audit', 'verify', '--json', '--db', join(stateDir, 'audit.db')]));
    } catch (e) {
      verify = { ok: false, output: String(e.stdout ?? e.message) }; // exit 2: a broken chain
    }
    let applianceAudit;
    try {
      applianceAudit = run(bins.appliance, ['verify-audit', '--db', join(applianceDir, 'state.db')]).trim();
    } catch (e) {
      applianceAudit = `FAILED: ${e.stdout ?? e.message}`;
    }
    const rows = JSON.parse(run('sqlite3', ['-readonly', '-json', join(stateDir, 'audit.db'), "SELECT digest, result, detail FROM audit WHERE event = 'signature'"]) || '[]');
    const okRows = new Map();
    const docRows = new Map();
    for (const r of rows) {
      if (r.result !== 'ok') continue;
      okRows.set(r.digest, (okRows.get(r.digest) ?? 0) + 1);
      const m = /output-sha256=([0-9a-f]{64})/.exec(r.detail ?? '');
      if (m) docRows.set(m[1], (docRows.get(m[1]) ?? 0) + 1);
    }
    const problems = [];
    const note = (ok, what) => (ok ? null : problems.push(what));
    let notAudited = 0;
    for (const d of received.keys()) if (!okRows.has(d)) notAudited += 1;
    let twiceAudited = 0;
    let unexplained = 0;
    for (const [d, n] of okRows) {
      const it = items.get(d);
      if (!it) continue; // not this run's (none: the state is new)
      if (n > 1) twiceAudited += 1;
      if (received.has(d)) continue;
      if (it.batch.mode === 'leave' && it.batch.left && it.index > it.batch.last) stats.withheld += 1;
      else unexplained += 1;
    }
    let docsNotAudited = 0;
    for (const h of documents.keys()) if (!docRows.has(h)) docsNotAudited += 1;
    const remoteSigned = batches.filter((b) => b.remote).reduce((n, b) => n + b.got.size, 0);
    const applianceSigned = (() => {
      const out = run('sqlite3', ['-readonly', join(applianceDir, 'state.db'), "SELECT detail FROM audit WHERE event = 'sign'"]);
      return out.split('\n').filter(Boolean).reduce((n, l) => n + Number(/, (\d+) signatures/.exec(l)?.[1] ?? 0), 0);
    })();

    const checks = {
      'the agent never crashed': !crashed,
      'every signature a page received verifies': stats.badSignatures === 0,
      'every signature a page received is in the audit log': notAudited === 0,
      'every signed document a page received is in the audit log': docsNotAudited === 0,
      'every ok row was received, or withheld from a page that left': unexplained === 0,
      'no item signed twice (audit) or delivered twice': twiceAudited === 0 && stats.twiceReceived === 0,
      'the audit chain verifies (kyso audit verify)': verify.ok === true,
      "the service's audit chain verifies and counts every remote signature": applianceAudit.startsWith('audit log intact') && applianceSigned >= remoteSigned,
    };
    if (!o.smoke) {
      checks['RSS at the end within 10% of the first minute'] = usage.rssLastKb <= usage.rssFirstKb * 1.1;
      checks['open fds at the end within 10% of the first minute'] = usage.fdsLast <= usage.fdsFirst * 1.1;
    }
    for (const [k, v] of Object.entries(checks)) note(v, k);
    const result = {
      seed: o.seed,
      durationSeconds: o.duration,
      pages: o.pages,
      smoke: o.smoke,
      loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
      requests: stats.requests,
      signaturesDelivered: stats.signatures,
      documentsDelivered: stats.documents,
      remoteSignaturesDelivered: remoteSigned,
      applianceAuditedSignatures: applianceSigned,
      auditOkRows: [...okRows.values()].reduce((a, b) => a + b, 0),
      withheldFromPagesThatLeft: stats.withheld,
      actions: stats.actions,
      errors: stats.errors,
      batchItemErrors: stats.itemErrors,
      batchOutcomes: stats.outcomes,
      tokenPulls: stats.tokenPulls,
      applianceKills: stats.applianceKills,
      agentCrash: crashed,
      auditVerify: { ok: verify.ok, rows: verify.rows },
      applianceAudit,
      usage,
      checks,
    };
    if (o.json) console.log(JSON.stringify(result, null, 2));
    else {
      console.log(`bench/soak: ${o.pages} pages, ${o.duration} s${o.smoke ? ' (smoke)' : ''}, seed ${o.seed}; loadavg ${result.loadavg}`);
      console.log(`  requests answered ${result.requests}; signatures delivered ${result.signaturesDelivered} (remote ${remoteSigned}), documents ${result.documentsDelivered}`);
      console.log(`  actions: ${JSON.stringify(stats.actions)}`);
      console.log(`  errors by code: ${JSON.stringify(stats.errors)}; batch items failed: ${JSON.stringify(stats.itemErrors)}`);
      console.log(`  batches: ${JSON.stringify(stats.outcomes)}`);
      console.log(`  faults: token pulled ${stats.tokenPulls} times, C_Sign failing 2 in 1000, pinentry cancelling 4 in 100, appliance killed ${stats.applianceKills} time(s)`);
      console.log(`  audit: ${result.auditOkRows} ok signature rows, ${verify.rows} rows in all; withheld (signed after the page left) ${stats.withheld}; service audit: ${applianceAudit}, ${applianceSigned} signatures`);
      const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
      console.log(`  agent, every page idle and connected, at ${usage.first.t} s -> at the end (${usage.last.t} s): RSS ${mb(usage.rssFirstKb)} -> ${mb(usage.rssLastKb)} (heap ${mb(usage.first.anonKb)} -> ${mb(usage.last.anonKb)}), fds ${usage.fdsFirst} -> ${usage.fdsLast}; largest RSS seen ${mb(usage.largestRssKb)}`);
      for (const [k, v] of Object.entries(checks)) console.log(`  ${v ? 'PASS' : 'FAIL'} ${k}`);
    }
    if (problems.length) {
      console.error(`soak: ${problems.length} check(s) failed: ${JSON.stringify({ notAudited, unexplained, twiceAudited, docsNotAudited, badSignatures: bad })}`);
      console.error(`the agent's log (last 4000 bytes):\n${agent.log.slice(-4000)}`);
      console.error(`the appliance's log (last 4000 bytes):\n${appliance.log.slice(-4000)}`);
      process.exitCode = 1;
    }
  } finally {
    cleanup();
  }
}

await runWithWebSocket(main);
