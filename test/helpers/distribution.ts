// Start CNCF distribution 2.8.2 (Debian package docker-registry) on a loopback
// port with its filesystem driver, for compatibility tests and benchmarks.
import fs from 'node:fs';
import path from 'node:path';
import { freePort, launch, type Managed } from './process';
import { tempDir } from './berth';

export const DISTRIBUTION_BIN = process.env.DISTRIBUTION_BIN ?? '/usr/bin/docker-registry';

export function haveDistribution(): boolean {
  return fs.existsSync(DISTRIBUTION_BIN);
}

export interface Distribution extends Managed {
  root: string;
  host: string;
}

/**
 * `storageYaml` replaces the filesystem storage section (e.g. an s3 one) when given, as YAML
 * lines; `extraYaml` adds top-level sections (e.g. `auth:`). `accessLog` prints a line per
 * request on stdout (Apache combined format; see requestsIn). `metricsPort`: Prometheus
 * metrics at http://127.0.0.1:PORT/metrics (its storage driver calls among them).
 */
export async function startDistribution(
  opts: { root?: string; port?: number; storageYaml?: string; extraYaml?: string; accessLog?: boolean; metricsPort?: number; pollMs?: number } = {},
): Promise<Distribution> {
  const root = opts.root ?? tempDir('distribution-test-');
  const port = opts.port ?? (await freePort());
  const confDir = tempDir('distribution-conf-');
  const storage = opts.storageYaml ?? `  filesystem:\n    rootdirectory: ${root}\n`;
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    `    disabled: ${!opts.accessLog}`,
    'storage:',
    storage.trimEnd(),
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(opts.metricsPort ? ['  debug:', `    addr: 127.0.0.1:${opts.metricsPort}`, '    prometheus:', '      enabled: true', '      path: /metrics'] : []),
    ...(opts.extraYaml ? [opts.extraYaml.trimEnd()] : []),
    '',
  ].join('\n');
  const file = path.join(confDir, 'config.yml');
  fs.writeFileSync(file, config);
  const env = { ...process.env };
  // distribution reads REGISTRY_* overrides too; keep ours from leaking in.
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
  const m = await launch({ cmd: DISTRIBUTION_BIN, args: ['serve', file], env, port, pollMs: opts.pollMs });
  // The config is read at start-up; drop its folder once the process is gone.
  m.proc.on('exit', () => fs.rmSync(confDir, { recursive: true, force: true }));
  return Object.assign(m, { root, host: `127.0.0.1:${port}` });
}

export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  /** The client's User-Agent ('' without one). */
  agent: string;
}

/** The requests in distribution's access log (its output with `accessLog`), in order. */
export function requestsIn(output: string): LoggedRequest[] {
  return [...output.matchAll(/"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"/g)].map((m) => ({ method: m[1], path: m[2], status: Number(m[3]), agent: m[4] }));
}
