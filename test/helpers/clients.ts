// Real registry clients for the client tests: find them, run them, and decide
// what happens when one is missing (a visible skip locally; a failure under CI=true).
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { startBerth } from './berth';
import { startDistribution } from './distribution';

export type Client = 'docker' | 'dockerd' | 'containerd' | 'ctr' | 'skopeo' | 'podman' | 'buildah' | 'umoci' | 'curl';

/** The Debian package that provides each client (what .ci/run installs). */
export const DEBIAN_PACKAGE: Record<Client, string> = {
  docker: 'docker.io',
  dockerd: 'docker.io',
  containerd: 'containerd',
  ctr: 'containerd',
  skopeo: 'skopeo',
  podman: 'podman',
  buildah: 'buildah',
  umoci: 'umoci',
  curl: 'curl',
};

/** Every executable named `name` on PATH, in PATH order. */
function onPath(name: string): string[] {
  const found: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile() && !found.includes(p)) found.push(p);
    } catch {
      // not here
    }
  }
  return found;
}

const versionOf = (bin: string) => /version ([^\s,]+)/.exec(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1];

/** Absolute path of a client, or undefined. */
export function findClient(name: Client): string | undefined {
  const candidates = onPath(name);
  const dockerd = name === 'docker' && candidates.length > 1 ? onPath('dockerd')[0] : undefined;
  if (dockerd) {
    // Several docker CLIs (e.g. a newer one in /usr/local/bin): use the engine's own.
    const engine = versionOf(dockerd);
    const same = candidates.find((c) => versionOf(c) === engine);
    if (same) return same;
  }
  return candidates[0];
}

export function inCI(): boolean {
  return ['true', '1', 'yes'].includes((process.env.CI ?? '').toLowerCase());
}

/**
 * Resolve clients for a test file. When some are missing: under CI=true a failing
 * assertion, otherwise a skipped test point plus a notice on stderr. Returns the paths
 * only when all were found; callers define their tests only then.
 */
export function needClients<C extends Client>(t: Test, names: C[]): Record<C, string> | undefined {
  const found = {} as Record<C, string>;
  const missing: C[] = [];
  for (const n of names) {
    const p = findClient(n);
    if (p) found[n] = p;
    else missing.push(n);
  }
  if (missing.length === 0) return found;
  const pkgs = [...new Set(missing.map((m) => DEBIAN_PACKAGE[m]))].join(' ');
  const what = `missing client(s): ${missing.join(', ')} (Debian: apt-get install ${pkgs})`;
  if (inCI()) {
    t.fail(`${what}; CI=true requires every client`);
  } else {
    process.stderr.write(`NOTICE: skipping real-client tests, ${what}\n`);
    t.skip(`real-client tests: ${what}`, () => {});
  }
  return undefined;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
  /** Written to the command's stdin (e.g. a password for --password-stdin). */
  input?: string;
}

/** Run a command to completion; never throws for a non-zero exit (see mustRun). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 180_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          // spawn failure or killed by the timeout
          reject(new Error(`${describe(cmd, args)}: ${err.message}\n${stdout}${stderr}`));
          return;
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Run a command and throw, with the command line and its output, when it fails. */
export async function mustRun(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${describe(cmd, args)} exited ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`);
  }
  return r;
}

export function describe(cmd: string, args: string[]): string {
  return [path.basename(cmd), ...args].map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

/**
 * Global options that keep podman and buildah in a private store under dir (rootful, vfs:
 * works on any filesystem, including overlay-on-overlay CI machines).
 */
export function containersStorageArgs(dir: string): string[] {
  return ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs'];
}

/** podman with a private store and libpod tmpdir under dir (the default /run/libpod is shared by every podman on the host). */
export function privatePodman(bin: string, dir: string, env?: NodeJS.ProcessEnv): (args: string[]) => Promise<RunResult> {
  return (args) => mustRun(bin, [...containersStorageArgs(dir), '--tmpdir', path.join(dir, 'tmp'), '--events-backend', 'none', ...args], { env });
}

// ---------- the registry under test, and what it stored ----------

export interface Target {
  kind: 'berth' | 'distribution';
  /** "127.0.0.1:PORT" */
  host: string;
  url: string;
  /** Filesystem store root (distribution's v2 layout under docker/registry/v2). */
  root: string;
  /** Stop the server and remove its store. */
  stop(): Promise<void>;
}

/**
 * Start the registry the client tests run against: berth, or CNCF distribution 2.8.2
 * with BERTH_CLIENT_TARGET=distribution (to check the tests themselves).
 */
export async function startTarget(): Promise<Target> {
  const kind = process.env.BERTH_CLIENT_TARGET === 'distribution' ? 'distribution' : 'berth';
  const reg = kind === 'berth' ? await startBerth({ deleteEnabled: true }) : await startDistribution();
  return {
    kind,
    host: reg.host,
    url: reg.url,
    root: reg.root,
    async stop() {
      await reg.stop();
      fs.rmSync(reg.root, { recursive: true, force: true });
    },
  };
}

const ACCEPT_ALL = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface FetchedManifest {
  status: number;
  digest: string | null;
  mediaType: string | null;
  body: Buffer;
}

/** GET a manifest by tag or digest straight over HTTP, accepting every manifest type. */
export async function getManifest(target: Target, repo: string, ref: string): Promise<FetchedManifest> {
  const res = await fetch(`${target.url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT_ALL } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.headers.get('docker-content-digest'), mediaType: res.headers.get('content-type'), body };
}

function walk(dir: string, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Every regular file under the store's blobs/ directory, relative to it. */
export function blobFiles(root: string): string[] {
  const blobs = path.join(root, 'docker', 'registry', 'v2', 'blobs');
  return walk(blobs).map((f) => path.relative(blobs, f));
}

/**
 * How many files anywhere under the store hold exactly this content (same size,
 * same sha256): 1 when a blob is stored once, however many repositories use it.
 */
export function copiesOnDisk(root: string, digest: string, size: number): string[] {
  const hex = digest.replace(/^sha256:/, '');
  return walk(root).filter((f) => {
    // The running registry renames its temporary files (the index's feed) away meanwhile.
    const stat = fs.statSync(f, { throwIfNoEntry: false });
    if (stat?.size !== size) return false;
    return crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex') === hex;
  });
}
