// What `berth serve` checks and says when it starts: the `listening` line
// names the store, the auth mode and deletes; a store it cannot write stops it
// with a message (exit 1) instead of pushes failing later, unless it is told
// to serve read-only; a root under /proc no longer hangs it; a store that
// stops taking writes answers 503, not 500; a token realm on another port is
// warned about, and the example config's realm works on any port.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { writeKey } from './helpers/auth';
import { CLI, NODE_FLAGS, startBerth, tempDir } from './helpers/berth';
import { freePort, launch } from './helpers/process';
import { pushImage, randomBlob } from './helpers/registry-client';

const REPO = path.resolve(__dirname, '../..');
/** This process's environment without REGISTRY_* settings (the tests set their own). */
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
// Run as root, berth would write anywhere: drop the capabilities that let root ignore file modes.
const unprivileged = (args: string[]) =>
  process.getuid?.() === 0 ? { cmd: 'setpriv', args: ['--bounding-set=-all', '--inh-caps=-all', '--', process.execPath, ...args] } : { cmd: process.execPath, args };

/** Every directory under (and including) dir: mode 0555 (read-only) or 0755. */
function setWritable(dir: string, writable: boolean): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) setWritable(path.join(dir, e.name), writable);
  fs.chmodSync(dir, writable ? 0o755 : 0o555);
}

const logLine = (output: string, msg: string) =>
  output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.msg === msg);

/** Run `berth serve` expecting it to stop on its own; its exit code, output and time taken. */
function serveUntilExit(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; output: string; ms: number }> {
  const { cmd, args } = unprivileged([CLI, 'serve']);
  const started = Date.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...baseEnv, REGISTRY_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (b) => (output += b));
    p.stderr.on('data', (b) => (output += b));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

/** berth serve as a process without root's file-mode override, on a loopback port. */
async function startUnprivileged(root: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const { cmd, args } = unprivileged([...NODE_FLAGS, CLI, 'serve']);
  return launch({
    cmd,
    args,
    port,
    env: { ...baseEnv, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_LOG_LEVEL: 'info', ...env },
  });
}

t.test('the listening line names the store, the auth mode and whether deletes are enabled', async (t) => {
  const open = await startBerth({ deleteEnabled: false, env: { REGISTRY_LOG_LEVEL: 'info' } });
  t.teardown(() => open.stop());
  t.match(logLine(open.output(), 'listening'), { storage: 'filesystem', rootdirectory: open.root, auth: /^none/, deletes: false, readOnly: false });

  const htpasswd = path.join(tempDir('berth-startup-'), 'htpasswd');
  fs.writeFileSync(htpasswd, `alice:${bcrypt.hashSync('alice-password', 4)}\n`);
  const guarded = await startBerth({ env: { REGISTRY_LOG_LEVEL: 'info', REGISTRY_AUTH_HTPASSWD_REALM: 'berth', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd } });
  t.teardown(() => guarded.stop());
  t.match(logLine(guarded.output(), 'listening'), { rootdirectory: guarded.root, auth: 'htpasswd', deletes: true });
});

t.test('a store berth cannot write stops it at start, saying what to do', async (t) => {
  const root = tempDir('berth-startup-');
  setWritable(root, false);
  t.teardown(() => setWritable(root, true));
  const r = await serveUntilExit({ REGISTRY_HTTP_ADDR: `127.0.0.1:${await freePort()}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root });
  t.equal(r.code, 1, 'exit 1');
  const line = logLine(r.output, 'cannot start');
  t.match(line?.error, new RegExp(`the store at ${root} cannot be written: EACCES.*storage\\.maintenance\\.readonly\\.enabled: true`), 'what and how to fix it');
  t.notOk(logLine(r.output, 'listening'), 'it never listened');
});

t.test('told to serve read-only, it serves pulls from a store it cannot write', async (t) => {
  const root = tempDir('berth-startup-');
  const writer = await startBerth({ root });
  const img = await pushImage(writer.url, 'team/app', 'v1', randomBlob(100), [randomBlob(1000)]);
  await writer.stop();
  setWritable(root, false);
  t.teardown(() => setWritable(root, true));
  const b = await startUnprivileged(root, { REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true' });
  t.teardown(() => b.stop());
  t.match(logLine(b.output(), 'listening'), { readOnly: true });
  t.equal((await fetch(`${b.url}/readyz`)).status, 200, 'ready');
  const m = await fetch(`${b.url}/v2/team/app/manifests/v1`, { headers: { accept: img.mediaType } });
  t.equal(m.status, 200, 'pulls work');
  await m.arrayBuffer();
  const push = await fetch(`${b.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
  t.equal(push.status, 405, 'a push is refused as unsupported');
  t.match(await push.json(), { errors: [{ code: 'UNSUPPORTED' }] });
});

t.test('a store that stops taking writes after start: pushes get 503, not 500', async (t) => {
  const root = tempDir('berth-startup-');
  const b = await startUnprivileged(root);
  t.teardown(() => b.stop());
  await pushImage(b.url, 'team/app', 'v1', randomBlob(100), [randomBlob(1000)]);
  setWritable(root, false);
  t.teardown(() => setWritable(root, true));
  const res = await fetch(`${b.url}/v2/team/other/blobs/uploads/`, { method: 'POST' });
  t.equal(res.status, 503);
  t.match(await res.json(), { errors: [{ code: 'UNAVAILABLE', message: /storage refused the write/ }] });
  t.match(b.output(), /"level":"error","msg":"storage refused a write"/, 'the operator hears of it');
});

t.test('a root under /proc is refused within the probe bound, not a hang', async (t) => {
  const port = await freePort();
  const missing = await serveUntilExit({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/proc/berth-store' });
  t.equal(missing.code, 1, '/proc/berth-store: exit 1');
  t.ok(missing.ms < 10_000, `at once (${missing.ms} ms)`);
  t.match(logLine(missing.output, 'cannot start')?.error, /cannot open the store at \/proc\/berth-store: ENOENT/);
  const existing = await serveUntilExit({ REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/proc/self' });
  t.equal(existing.code, 1, '/proc/self: exit 1');
  t.ok(existing.ms < 25_000, `within the probe's bound (${existing.ms} ms)`);
  t.match(logLine(existing.output, 'cannot start')?.error, /the store at \/proc\/self (did not answer a small write within 10s|cannot be written)/);
});

t.test('token auth: the example works on any port; a realm on another port is warned about', async (t) => {
  const dir = tempDir('berth-startup-');
  const key = writeKey(dir, 'token', 'ec');
  const env = {
    REGISTRY_LOG_LEVEL: 'info',
    REGISTRY_TOKENSERVER_KEY: key.keyPath,
    REGISTRY_TOKENSERVER_USERS: path.join(dir, 'users.yml'),
    REGISTRY_TOKENSERVER_POLICY: path.join(REPO, 'deploy/examples/token-auth-policy.yml'),
  };
  const example = await startBerth({ config: path.join(REPO, 'deploy/examples/token-auth.yml'), env });
  t.teardown(() => example.stop());
  const res = await fetch(`${example.url}/v2/`);
  await res.arrayBuffer();
  t.equal(res.status, 401);
  t.match(res.headers.get('www-authenticate'), `Bearer realm="http://${example.host}/token"`, 'the realm is this registry, on its port');
  t.notMatch(example.output(), /auth\.token\.realm/, 'no warning');
  t.match(logLine(example.output(), 'listening'), { auth: 'token', tokenService: '/token' });

  const fixed = await startBerth({
    config: path.join(REPO, 'deploy/examples/token-auth.yml'),
    env: { ...env, REGISTRY_AUTH_TOKEN_AUTOREDIRECT: 'false', REGISTRY_AUTH_TOKEN_REALM: 'http://localhost:5000/token' },
  });
  t.teardown(() => fixed.stop());
  t.match(fixed.output(), new RegExp(`auth\\.token\\.realm http://localhost:5000/token points at port 5000, but berth listens on ${fixed.port}`));
});
