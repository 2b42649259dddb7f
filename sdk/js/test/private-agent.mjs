// A real kyso-agent of its own for the measurement scripts (large-pdf.mjs, rss-documents.mjs):
// a copy of the test token under a private SOFTHSM2_CONF, the scripted pinentry typing the PIN,
// an allow-listed origin, and a WebSocket class that sends that Origin (Node's WebSocket sends
// none by itself).
//   const a = await startPrivateAgent('kyso-rss-', ['--log-level', 'warn']);
//   ... connect({ ports: [a.port], WebSocket: a.WebSocket }) ... ; await a.stop();
// a.log() returns the agent's log (its stdout; start it with --log-level debug to see each HTTP
// request the agent read); its stderr is passed through.
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ORIGIN = 'http://127.0.0.1:5173';

/** KYSO_AGENT_BIN started on a copy of KYSO_TEST_DIR's token; `extraArgs` go on its command line. */
export async function startPrivateAgent(prefix, extraArgs = []) {
  const testDir = process.env.KYSO_TEST_DIR;
  const manifest = JSON.parse(readFileSync(join(testDir, 'manifest.json'), 'utf8'));
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  cpSync(join(testDir, 'tokens'), join(tmp, 'tokens'), { recursive: true });
  writeFileSync(join(tmp, 'softhsm2.conf'), `directories.tokendir = ${join(tmp, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pinentry = join(tmp, 'pinentry');
  writeFileSync(pinentry, `#!/bin/sh\nexport KYSO_PINENTRY_PIN='${manifest.user_pin}'\nexec '${join(repo, 'tests', 'agent', 'scripted-pinentry.sh')}' "$@"\n`);
  chmodSync(pinentry, 0o755);
  const agent = spawn(
    process.env.KYSO_AGENT_BIN,
    ['--port', '0', '--module', manifest.module, '--no-system-modules', '--pinentry', pinentry,
      '--state-dir', join(tmp, 'state'), '--allow-origin', ORIGIN, ...extraArgs],
    { env: { ...process.env, SOFTHSM2_CONF: join(tmp, 'softhsm2.conf') }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let log = '';
  agent.stdout.on('data', (d) => (log += d));
  const stop = async () => {
    if (agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    const port = await new Promise((res, rej) => {
      agent.stdout.on('data', () => {
        const m = /127\.0\.0\.1:(\d+)/.exec(log);
        if (m) res(Number(m[1]));
      });
      agent.once('exit', () => rej(new Error('kyso-agent exited')));
    });
    class OriginWebSocket extends WebSocket {
      constructor(url) {
        super(url, { headers: { Origin: ORIGIN } });
      }
    }
    return { agent, pid: agent.pid, port, tmp, manifest, WebSocket: OriginWebSocket, stop, log: () => log };
  } catch (e) {
    await stop();
    throw e;
  }
}
