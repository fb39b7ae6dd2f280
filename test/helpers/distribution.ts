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
 * lines; `extraYaml` adds top-level sections (e.g. `auth:`).
 */
export async function startDistribution(opts: { root?: string; port?: number; storageYaml?: string; extraYaml?: string } = {}): Promise<Distribution> {
  const root = opts.root ?? tempDir('distribution-test-');
  const port = opts.port ?? (await freePort());
  const confDir = tempDir('distribution-conf-');
  const storage = opts.storageYaml ?? `  filesystem:\n    rootdirectory: ${root}\n`;
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    storage.trimEnd(),
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(opts.extraYaml ? [opts.extraYaml.trimEnd()] : []),
    '',
  ].join('\n');
  const file = path.join(confDir, 'config.yml');
  fs.writeFileSync(file, config);
  const env = { ...process.env };
  // distribution reads REGISTRY_* overrides too; keep ours from leaking in.
  for (const k of Object.keys(env)) if (k.startsWith('REGISTRY_')) delete env[k];
  const m = await launch({ cmd: DISTRIBUTION_BIN, args: ['serve', file], env, port });
  // The config is read at start-up; drop its folder once the process is gone.
  m.proc.on('exit', () => fs.rmSync(confDir, { recursive: true, force: true }));
  return Object.assign(m, { root, host: `127.0.0.1:${port}` });
}
