// Start berth as a real process (the compiled CLI) on a loopback port.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, launch, type Managed, type TlsClient } from './process';

export const CLI = path.resolve(__dirname, '../../server/cli.js');
/** What `npm start`, the bin's shebang and the container image run berth with. */
export const NODE_FLAGS = ['--max-semi-space-size=8', '--heap-growing-percent=300'];

export interface BerthOptions {
  /** Filesystem root directory; a fresh temp dir when omitted. */
  root?: string;
  port?: number;
  /** Extra REGISTRY_* (or other) environment variables. */
  env?: Record<string, string>;
  /** A config file path passed with --config. */
  config?: string;
  deleteEnabled?: boolean;
  /** Options for node itself, before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Serving HTTPS (http.tls set in env or config): how to reach it. */
  tls?: TlsClient;
  /** Poll for readiness this often (ms); a benchmark timing start-up polls often. */
  pollMs?: number;
  readyTimeoutMs?: number;
}

export interface Berth extends Managed {
  root: string;
  /** "127.0.0.1:PORT", what clients use as the registry host. */
  host: string;
}

const tempDirs: string[] = [];
// Every test file is a process of its own: what it made goes when it exits
// (a full run used to leave dozens of stores behind in /tmp).
process.once('exit', () => {
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      // Something still holds it (a mount, a process): leave it rather than fail the exit.
    }
  }
});

/** A fresh directory under the system's temp dir, removed when this process exits. */
export function tempDir(prefix = 'berth-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export async function startBerth(opts: BerthOptions = {}): Promise<Berth> {
  const root = opts.root ?? tempDir();
  const port = opts.port ?? (await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    // Another storage driver in env (e.g. REGISTRY_STORAGE_S3_*) replaces the filesystem one.
    ...(!Object.keys(opts.env ?? {}).some((k) => k.startsWith('REGISTRY_STORAGE_S3_')) && { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root }),
    REGISTRY_STORAGE_DELETE_ENABLED: String(opts.deleteEnabled ?? true),
    REGISTRY_LOG_LEVEL: process.env.BERTH_TEST_LOG_LEVEL ?? 'warn',
    ...opts.env,
  };
  const args = [...NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI, 'serve'];
  if (opts.config) args.push('--config', opts.config);
  const m = await launch({ cmd: process.execPath, args, env, port, protocol: opts.tls ? 'https' : 'http', tls: opts.tls, pollMs: opts.pollMs, readyTimeoutMs: opts.readyTimeoutMs });
  return Object.assign(m, { root, host: `127.0.0.1:${port}` });
}
