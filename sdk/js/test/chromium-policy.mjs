// Chromium's managed policy for a test: a JSON file in /etc/chromium/policies/managed/, the only
// place a real Chromium reads enterprise policy from on Linux. The directory is machine-global, so
// the file has a name of its own (kyso-e2e-lna-<pid>.json), is removed on every way out of the
// test (return, throw, SIGINT/SIGTERM), and a file left by a killed run (its pid gone) is removed
// before the next one writes. ctest runs the users of it under one RESOURCE_LOCK.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const POLICY_DIR = process.env.KYSO_CHROMIUM_POLICY_DIR ?? '/etc/chromium/policies/managed';
const PREFIX = 'kyso-e2e-lna-';

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
};

function removeStale() {
  let names = [];
  try {
    names = readdirSync(POLICY_DIR);
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${PREFIX}(\\d+)\\.json$`).exec(name);
    if (m && (Number(m[1]) === process.pid || !alive(Number(m[1])))) rmSync(join(POLICY_DIR, name), { force: true });
  }
}

let current;
const cleanup = () => {
  if (current) rmSync(current, { force: true });
  current = undefined;
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanup();
    process.kill(process.pid, sig);
  });
}

/** Writes `policy` (an object of policy names to values) as this process's managed policy file. */
export function writePolicy(policy) {
  removeStale();
  mkdirSync(POLICY_DIR, { recursive: true, mode: 0o755 });
  current = join(POLICY_DIR, `${PREFIX}${process.pid}.json`);
  writeFileSync(current, `${JSON.stringify(policy, null, 2)}\n`, { mode: 0o644 });
  return current;
}

/** Removes this process's policy file (and stale ones of killed runs). */
export function removePolicy() {
  cleanup();
  removeStale();
}
