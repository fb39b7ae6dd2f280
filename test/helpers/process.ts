// Start and stop server processes for tests and benchmarks: a free loopback
// port, wait-until-ready, and stop by our own PID only.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { addListener as onSpawn } from 'process-on-spawn';

// tap runs each test file with NODE_OPTIONS=--import=<this checkout>/node_modules/@tapjs/...
// and puts it back into the environment of every process the file spawns, whatever env the
// spawn was given (process-on-spawn, whose listeners run in order: this one after tap's).
// No child may keep it: a node outside this checkout (a chroot, a container) cannot load
// the hook and does not start, and a child registry would run with tap's hooks in it.
// So no child of a test gets NODE_OPTIONS at all: give node its flags as arguments.
onSpawn((opts) => {
  const env = { ...opts.env };
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k.startsWith('_TAPJS_PROCESSINFO_')) delete env[k];
  opts.env = env;
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface Managed {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, wait for exit (SIGKILL after timeoutMs); resolves to the exit code or signal. */
  stop(timeoutMs?: number): Promise<number | string | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface LaunchOptions {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  port: number;
  /** Path polled until it answers (any HTTP status below 500). */
  readyPath?: string;
  readyTimeoutMs?: number;
  /** How often readyPath is polled (ms); a benchmark timing start-up polls often. */
  pollMs?: number;
  protocol?: 'http' | 'https';
  /** For https: the CA to trust and, when the server asks for one, a client certificate. */
  tls?: TlsClient;
}

export interface TlsClient {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** GET url and return the status (fetch cannot be given a CA of its own). */
export function httpsStatus(url: string, tls: TlsClient): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tls, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function probe(url: string, tls: TlsClient | undefined): Promise<number> {
  if (tls) return httpsStatus(url, tls);
  const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.status;
}

export async function launch(opts: LaunchOptions): Promise<Managed> {
  const proc = spawn(opts.cmd, opts.args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<number | string | null>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  const url = `${opts.protocol ?? 'http'}://127.0.0.1:${opts.port}`;
  const managed: Managed = {
    url,
    port: opts.port,
    proc,
    output: () => out,
    async stop(timeoutMs = 20000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20000);
  const readyPath = opts.readyPath ?? '/v2/';
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${opts.cmd} exited before it was ready:\n${out}`);
    }
    try {
      if ((await probe(url + readyPath, opts.tls)) < 500) return managed;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await managed.kill();
      throw new Error(`${opts.cmd} not ready after ${opts.readyTimeoutMs ?? 20000} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

/** A memory figure of a running process from /proc/PID/status (e.g. VmRSS, VmHWM), in MiB. */
export function procMemMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** CPU time (user + system, all threads) a running process has used, in seconds. */
export function procCpuSeconds(pid: number): number {
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th,
  // in USER_HZ ticks, which Linux fixes at 100 per second.
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
