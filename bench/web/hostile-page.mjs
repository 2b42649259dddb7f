#!/usr/bin/env node
// A hostile web page against a real kyso-agent, bounded in time, while the school's allow-listed
// page keeps signing single hashes (issue 12's "what it must show").
//
//   node bench/web/hostile-page.mjs --agent BUILD/agent/kyso-agent [--duration 60] [--json]
//   node bench/web/hostile-page.mjs --agent BUILD/agent/kyso-agent --smoke   (5 s, small counts)
//   options: --quiet S (quiet phase, 10), --refused N (20000), --sockets N (24), --json,
//            --pace MS (the allow-listed page's pause between two signs, 250: four signs a
//            second, far more than a teacher clicks; 0 signs back to back),
//            --token DIR (a copy of a tests/pki/make-demo-token.sh token instead of a new one),
//            --skip a,b (leave attacks out: deep-hello, sockets, pair, refused, oversized; to see
//            what the others do while one of them still crashes the agent)
//
// It makes a fresh demo token (tests/pki/make-demo-token.sh), starts the agent on it (allow-list:
// https://hocba.example.edu.vn; core dumps off) and supervises it like systemd's Restart=: a
// crash is counted and the agent started again on the same port. Then:
//   1. quiet: the allow-listed page signs single hashes, one every --pace ms (the reference p99,
//      and the audit bytes one sign of its own adds);
//   2. attack, for --duration seconds, all at once from the unpaired origin https://evil.example:
//      - deep-nested `hello` (arrays 400,000 deep, 800 KB) on a fresh connection every 2 s;
//      - 24 unpaired sockets held open (reopened when closed): more than max_connections (16),
//        from their own origin https://sockets.evil.example (the unpaired quota, 4 in total and
//        2 per origin, would otherwise leave evil.example's other attacks no connection);
//      - `pair` reopened at once after the user cancels it (the scripted user cancels every
//        dialog that names evil.example after 300 ms);
//      - 20,000 refused `sign` requests, with a 64 KiB role and titles carrying U+2028/U+2029,
//        U+0085 and bidi controls (U+202E, U+2066), pipelined on 2 sockets (the per-origin quota);
//      - an oversized (1.5 MiB) message every 2 s;
//      while the allow-listed page keeps signing as in 1.
// Report: the allow-listed page's single-sign p50/p99 quiet and under attack (failed signs count
// as infinitely slow), the audit database's growth (audit.db + -wal + -shm, largest seen; and the
// part of it the attack caused: the growth less the allow-listed page's own signs at the quiet
// phase's bytes per sign), the
// agent's crashes and restarts, and what each attack got. Targets (exit 1 when one is missed,
// except with --smoke, which only checks that the harness runs): p99 under attack <= 2x quiet,
// audit growth < 1 MB (all of it, own signs included), no crash, every allow-listed sign succeeds.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { openConn, runWithWebSocket } from '../common/ws-page.mjs';

function parseArgs(argv) {
  const o = { agent: process.env.KYSO_AGENT_BIN, duration: 60, quiet: 10, smoke: false, json: false, refused: 20_000, pace: 250, sockets: 24, token: undefined, skip: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--agent') o.agent = next();
    else if (a === '--duration') o.duration = Number(next());
    else if (a === '--quiet') o.quiet = Number(next());
    else if (a === '--refused') o.refused = Number(next());
    else if (a === '--sockets') o.sockets = Number(next());
    else if (a === '--pace') o.pace = Number(next());
    else if (a === '--smoke') o.smoke = true;
    else if (a === '--token') o.token = resolve(next());
    else if (a === '--skip') {
      for (const k of next().split(',').filter(Boolean)) {
        if (!ATTACKS.includes(k)) usage(`--skip: unknown attack ${k} (${ATTACKS.join(', ')})`);
        o.skip.add(k);
      }
    }
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  if (o.smoke) Object.assign(o, { duration: 5, quiet: 3, refused: 500 });
  if (!o.agent) usage('--agent (or KYSO_AGENT_BIN) is required');
  o.agent = resolve(o.agent); // the agent runs in a scratch directory
  for (const k of ['duration', 'quiet', 'refused', 'sockets']) {
    if (!Number.isFinite(o[k]) || o[k] <= 0 || o[k] > 100_000) usage(`--${k} must be a positive number`);
  }
  if (!Number.isFinite(o.pace) || o.pace < 0 || o.pace > 10_000) usage('--pace must be 0-10000 ms');
  o.duration = Math.min(o.duration, 600); // bounded whatever is asked
  return o;
}

function usage(error) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1).filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n');
  if (error) console.error(`hostile-page: ${error}\n`);
  console.error(text);
  process.exit(error ? 2 : 0);
}

const ATTACKS = ['deep-hello', 'sockets', 'pair', 'refused', 'oversized'];
const SITE = 'https://hocba.example.edu.vn';
const t0 = Date.now();
/** Progress on stderr (the report is on stdout). */
const say = (msg) => process.stderr.write(`hostile-page [${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
const EVIL = 'https://evil.example';
// The socket attack's own origin: unpaired pages share a quota of 4 connections and 2 per origin,
// so sockets held from EVIL itself would leave its other attacks no connection at all.
const SOCKETS_ORIGIN = 'https://sockets.evil.example';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The scripted user: approves every dialog with the PIN, except those naming evil.example (cancelled). */
function writePinentry(path, pin) {
  writeFileSync(path, `#!/usr/bin/env bash
# Assuan like GnuPG's pinentry. The user types the PIN for the school's page and cancels, after
# reading it for 300 ms, any dialog that names evil.example.
desc=""
echo "OK Pleased to meet you"
while IFS= read -r line; do
  line="\${line%$'\\r'}"
  case "\${line%% *}" in
    SETDESC) desc="\${line#* }"; echo OK ;;
    GETPIN|CONFIRM)
      if [[ "$desc" == *evil.example* ]]; then sleep 0.3; echo "ERR 83886179 Operation cancelled <Pinentry>"
      elif [[ "\${line%% *}" == GETPIN ]]; then printf 'D %s\\nOK\\n' '${pin}'; else echo OK; fi ;;
    BYE) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
`);
  chmodSync(path, 0o755);
}

/** kyso-agent under a supervisor that restarts it on exit, as systemd would, and counts why. */
function supervise(bin, args, env, cwd) {
  const s = { port: 0, crashes: [], starts: 0, failedStarts: 0, child: null, stopping: false, ready: null, log: '' };
  const start = () => {
    s.starts += 1;
    const portArgs = s.port ? ['--port', String(s.port)] : ['--port', '0'];
    // No core dumps: a crash here is counted, not kept (the machine is shared).
    const child = spawn('/bin/sh', ['-c', 'ulimit -c 0; exec "$0" "$@"', bin, ...portArgs, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    s.child = child;
    s.ready = new Promise((res, rej) => {
      let out = '';
      const timer = setTimeout(() => rej(new Error(`kyso-agent did not start within 20 s\n${s.log.slice(-2000)}`)), 20_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on wss?:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
        if (m) {
          clearTimeout(timer);
          s.port = Number(m[1]);
          res(s.port);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        rej(new Error(`kyso-agent exited (${signal ?? code}) before listening\n${s.log.slice(-2000)}`));
      });
    });
    s.ready.catch(() => {});
    child.stderr.on('data', (d) => {
      s.log = (s.log + d).slice(-20_000);
    });
    const listened = s.ready.then(() => true, () => false);
    child.once('exit', async (code, signal) => {
      if (s.stopping) return;
      s.crashes.push({ at: Date.now(), code, signal });
      // An agent that cannot even start is not restarted forever.
      if (!(await listened) && ++s.failedStarts >= 3) return;
      setTimeout(start, 200);
    });
  };
  start();
  s.stop = async () => {
    s.stopping = true;
    const c = s.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  };
  return s;
}

function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function auditBytes(stateDir) {
  let n = 0;
  for (const f of ['audit.db', 'audit.db-wal', 'audit.db-shm']) {
    try {
      n += statSync(join(stateDir, f)).size;
    } catch {
      /* not there (yet) */
    }
  }
  return n;
}

/** The school's page: single signs back to back until `until()` is false; latencies in ms (failures: Infinity). */
async function schoolPage(agent, credentialId, until, record, pace) {
  let conn = null;
  while (until()) {
    if (!conn?.open) {
      await agent.ready.catch(() => {});
      conn = await openConn(agent.port, SITE, { connectTimeoutMs: 5000 });
      if (!conn) {
        record(Infinity, 'CONNECT_FAILED');
        await sleep(200);
        continue;
      }
    }
    const hash = randomBytes(32).toString('base64');
    const t0 = performance.now();
    // A single sign slower than 30 s is a failure, whatever its cause.
    const r = await conn.request('sign', { role: 'teacher', credentialId, item: { type: 'hash', hash, hashAlgorithm: 'sha256', title: 'Học bạ 12A1 - Nguyễn Hoàng An' } }, 30_000);
    const ms = performance.now() - t0;
    if (r.result?.signature) record(ms);
    else record(Infinity, r.error?.code ?? 'NO_ANSWER');
    await sleep(Math.max(pace, 1));
  }
  conn?.close();
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const here = dirname(fileURLToPath(import.meta.url));
  const repo = resolve(here, '..', '..');
  const tmp = mkdtempSync(join(tmpdir(), 'kyso-hostile-'));
  let agent;
  const cleanup = async () => {
    await agent?.stop();
    rmSync(tmp, { recursive: true, force: true });
  };
  // Bounded whatever happens: token, quiet phase, attack, and two minutes for the rest.
  const limitS = (o.token ? 60 : 300) + o.quiet + o.duration + 120;
  setTimeout(() => {
    say(`did not finish within ${limitS} s: stopping`);
    cleanup().then(() => process.exit(3));
  }, limitS * 1000).unref();
  process.once('SIGINT', () => cleanup().then(() => process.exit(130)));
  process.once('SIGTERM', () => cleanup().then(() => process.exit(143)));
  try {
    if (o.token) {
      // SoftHSM2's file store is for one process at a time: the agent signs on a private copy.
      cpSync(o.token, join(tmp, 'token'), { recursive: true });
      writeFileSync(join(tmp, 'token', 'softhsm2.conf'), `directories.tokendir = ${join(tmp, 'token', 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    } else {
      say('making a demo token');
      execFileSync(join(repo, 'tests', 'pki', 'make-demo-token.sh'), [join(tmp, 'token')], { stdio: 'ignore' });
    }
    const manifest = JSON.parse(readFileSync(join(tmp, 'token', 'manifest.json'), 'utf8'));
    const pinentry = join(tmp, 'pinentry');
    writePinentry(pinentry, manifest.user_pin);
    const stateDir = join(tmp, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    agent = supervise(
      o.agent,
      ['--module', manifest.module, '--no-system-modules', '--pinentry', pinentry, '--state-dir', stateDir, '--allow-origin', SITE, '--log-level', 'warn'],
      { ...process.env, SOFTHSM2_CONF: join(tmp, 'token', 'softhsm2.conf') },
      tmp,
    );
    say('starting kyso-agent');
    await agent.ready;
    say(`kyso-agent on port ${agent.port}`);

    // The teacher's credential, as the page would pick it.
    const setup = await openConn(agent.port, SITE, { connectTimeoutMs: 5000 });
    const list = await setup.request('credentials.list', { role: 'teacher' });
    setup.close();
    const want = manifest.credentials.find((c) => c.name === 'teacher').cn;
    const cred = list.result?.credentials?.find((c) => c.certificate?.commonName === want);
    if (!cred) throw new Error(`no teacher credential: ${JSON.stringify(list).slice(0, 500)}`);

    // 1. quiet
    say(`quiet: single signs for ${o.quiet} s`);
    const quiet = [];
    const quietErrors = {};
    let end = Date.now() + o.quiet * 1000;
    const quietAuditStart = auditBytes(stateDir);
    await schoolPage(agent, cred.id, () => Date.now() < end, (ms, code) => {
      quiet.push(ms);
      if (code) quietErrors[code] = (quietErrors[code] ?? 0) + 1;
    }, o.pace);
    const bytesPerSign = quiet.length ? Math.max(0, auditBytes(stateDir) - quietAuditStart) / quiet.length : 0;

    // 2. attack
    say(`attack: ${o.duration} s`);
    const crashesBefore = agent.crashes.length;
    const auditStart = auditBytes(stateDir);
    let auditMax = auditStart;
    const attacked = [];
    const attackErrors = {};
    const stats = { deepHello: 0, socketsOpened: 0, socketsRefused: 0, pairs: 0, pairAnswers: {}, refusedSent: 0, refusedAnswers: {}, oversized: 0 };
    const count = (obj, k) => (obj[k] = (obj[k] ?? 0) + 1);
    end = Date.now() + o.duration * 1000;
    const running = () => Date.now() < end;
    const sampler = setInterval(() => (auditMax = Math.max(auditMax, auditBytes(stateDir))), 250);

    const deepHello = o.skip.has('deep-hello') ? null : (async () => {
      const depth = 400_000;
      const text = `{"id":1,"method":"hello","params":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      while (running()) {
        await agent.ready.catch(() => {});
        const c = await openConn(agent.port, EVIL, { connectTimeoutMs: 5000 });
        if (c) {
          c.sendText(text);
          stats.deepHello += 1;
          await sleep(300);
          c.close();
        }
        await sleep(1700);
      }
    })();

    const held = new Set();
    const holdSockets = o.skip.has('sockets') ? null : (async () => {
      while (running()) {
        while (held.size < o.sockets && running()) {
          await agent.ready.catch(() => {});
          const c = await openConn(agent.port, SOCKETS_ORIGIN, { onClose: () => held.delete(c), connectTimeoutMs: 5000 });
          if (c) {
            stats.socketsOpened += 1;
            held.add(c);
          } else {
            stats.socketsRefused += 1;
            await sleep(50);
          }
        }
        await sleep(100);
      }
    })();

    const pairLoop = o.skip.has('pair') ? null : (async () => {
      while (running()) {
        await agent.ready.catch(() => {});
        const c = await openConn(agent.port, EVIL, { connectTimeoutMs: 5000 });
        if (!c) {
          await sleep(100);
          continue;
        }
        while (running() && c.open) {
          const r = await c.request('pair', {}, 150_000);
          stats.pairs += 1;
          count(stats.pairAnswers, r.error?.code ?? (r.result ? 'paired' : 'none'));
          if (r.result?.paired) break; // never: the user cancels
          await sleep(10);
        }
        c.close();
      }
    })();

    const spoof = 'Học bạ\u2028Kyso: trang này đã được nhà trường xác minh\u2029\u0085\u202Eevil\u202C \u2066ok\u2069';
    const bigRole = 'x'.repeat(64 * 1024);
    const refusedFlood = o.skip.has('refused') ? null : (async () => {
      const perSocket = Math.ceil(o.refused / 2);
      await Promise.all([0, 1].map(async () => {
        let sent = 0;
        while (sent < perSocket && running()) {
          await agent.ready.catch(() => {});
          const c = await openConn(agent.port, EVIL, { connectTimeoutMs: 5000 });
          if (!c) {
            await sleep(100);
            continue;
          }
          while (sent < perSocket && running() && c.open) {
            const batch = [];
            for (let k = 0; k < 64 && sent < perSocket; k++, sent++) {
              stats.refusedSent += 1;
              batch.push(c.request('sign', { role: bigRole, item: { type: 'hash', hash: randomBytes(32).toString('base64'), hashAlgorithm: 'sha256', title: spoof } }, 30_000));
            }
            for (const r of await Promise.all(batch)) count(stats.refusedAnswers, r.error?.code ?? 'result');
          }
          c.close();
        }
      }));
    })();

    const oversized = o.skip.has('oversized') ? null : (async () => {
      const text = `{"id":1,"method":"hello","params":{"pad":"${'a'.repeat(1536 * 1024)}"}}`;
      while (running()) {
        await agent.ready.catch(() => {});
        const c = await openConn(agent.port, EVIL, { connectTimeoutMs: 5000 });
        if (c) {
          c.sendText(text);
          stats.oversized += 1;
          await sleep(200);
          c.close();
        }
        await sleep(1800);
      }
    })();

    await schoolPage(agent, cred.id, running, (ms, code) => {
      attacked.push(ms);
      if (code) attackErrors[code] = (attackErrors[code] ?? 0) + 1;
    }, o.pace);
    say('attack over; waiting for the attackers to stop');
    await Promise.race([Promise.all([deepHello, holdSockets, pairLoop, refusedFlood, oversized]), sleep(15_000)]);
    for (const c of held) c.close();
    clearInterval(sampler);
    await sleep(500);
    auditMax = Math.max(auditMax, auditBytes(stateDir));
    const auditEnd = auditBytes(stateDir);

    const qp99 = percentile(quiet, 99);
    const ap99 = percentile(attacked, 99);
    const crashes = agent.crashes.slice(crashesBefore);
    const result = {
      loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
      durationSeconds: o.duration,
      smoke: o.smoke,
      skipped: [...o.skip],
      quiet: { signs: quiet.length, p50: percentile(quiet, 50), p99: qp99, errors: quietErrors },
      attack: { signs: attacked.length, p50: percentile(attacked, 50), p99: ap99, errors: attackErrors },
      p99Ratio: ap99 / qp99,
      auditGrowthBytes: auditMax - auditStart,
      auditEndGrowthBytes: auditEnd - auditStart,
      paceMs: o.pace,
      auditBytesPerOwnSign: Math.round(bytesPerSign),
      auditGrowthFromAttackBytes: Math.max(0, Math.round(auditMax - auditStart - attacked.length * bytesPerSign)),
      agentCrashes: crashes.map((c) => ({ code: c.code, signal: c.signal })),
      agentStarts: agent.starts,
      attacks: stats,
    };
    const targets = {
      'p99 under attack <= 2x quiet': result.p99Ratio <= 2,
      'every allow-listed sign succeeded': Object.keys(attackErrors).length === 0 && Object.keys(quietErrors).length === 0,
      'audit database grew < 1 MB': result.auditGrowthBytes < 1_000_000,
      'agent never crashed or restarted': crashes.length === 0,
    };
    result.targets = targets;
    if (o.json) {
      console.log(JSON.stringify(result, (k, v) => (v === Infinity ? 'Infinity' : v), 2));
    } else {
      const f = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : 'failed');
      console.log(`hostile page vs. kyso-agent, ${o.duration} s${o.smoke ? ' (smoke: figures mean nothing)' : ''}; loadavg ${result.loadavg}`);
      console.log(`  allow-listed single sign, quiet:        ${quiet.length} signs, p50 ${f(result.quiet.p50)}, p99 ${f(qp99)}${Object.keys(quietErrors).length ? `, errors ${JSON.stringify(quietErrors)}` : ''}`);
      console.log(`  allow-listed single sign, under attack: ${attacked.length} signs, p50 ${f(result.attack.p50)}, p99 ${f(ap99)}${Object.keys(attackErrors).length ? `, errors ${JSON.stringify(attackErrors)}` : ''}`);
      console.log(`  p99 ratio: ${Number.isFinite(result.p99Ratio) ? result.p99Ratio.toFixed(2) : 'inf'}x (target <= 2x)`);
      console.log(`  audit database growth: ${(result.auditGrowthBytes / 1e6).toFixed(2)} MB largest, ${(result.auditEndGrowthBytes / 1e6).toFixed(2)} MB at the end (target < 1 MB); of it the attack's ${(result.auditGrowthFromAttackBytes / 1e6).toFixed(2)} MB (own signs: ${attacked.length} at ${result.auditBytesPerOwnSign} B, one every ${o.pace} ms)`);
      console.log(`  agent crashes: ${crashes.length}${crashes.length ? ` (${[...new Set(crashes.map((c) => c.signal ?? `exit ${c.code}`))].join(', ')}), restarted each time` : ''}`);
      console.log(`  attacks: ${JSON.stringify(stats)}${o.skip.size ? ` (left out: ${[...o.skip].join(', ')})` : ''}`);
      for (const [name, ok] of Object.entries(targets)) console.log(`  ${ok ? 'PASS' : 'FAIL'} ${name}`);
    }
    if (!o.smoke && Object.values(targets).some((ok) => !ok)) process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

// Requests the attack left waiting (a pair dialog's 150 s) must not keep the process alive:
// runWithWebSocket exits once main returns.
await runWithWebSocket(main);
