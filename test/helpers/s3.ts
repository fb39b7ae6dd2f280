// A real S3 endpoint for tests: OpenStack Swift with s3api, started by
// deploy/s3/s3-server on free loopback ports in a temp dir.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './berth';
import type { S3DriverOptions } from '../../storage/drivers/s3';

const run = promisify(execFile);
/** From dist/test/helpers back to the source tree, where the script lives. */
export const S3_SERVER = path.resolve(__dirname, '../../../deploy/s3/s3-server');

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  dataDir: string;
  /** Driver options for this endpoint (plus any overrides). */
  options(extra?: Partial<S3DriverOptions>): S3DriverOptions;
  /** REGISTRY_STORAGE_S3_* variables that point berth at this endpoint. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** distribution 2.8.2's `storage:` entries (s3 under `root`, redirects off) for this endpoint; `extra` lines go under s3. */
  distributionStorage(root: string, extra?: string[]): string;
  /** Stop only the S3 front end (the proxy): the store becomes unreachable. */
  stopProxy(): Promise<void>;
  /** Start it again on the same port and data. */
  startProxy(): Promise<void>;
  /** SIGSTOP / SIGCONT the proxy: connections are accepted but never answered. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A base port with the four ports after it free too (the script uses PORT..PORT+4). */
export async function freePortRun(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    let ok = true;
    for (let p = base; p < base + 5 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free run of 5 loopback ports');
}

export async function startS3(opts: { bucket?: string } = {}): Promise<S3Server> {
  const dataDir = tempDir('berth-s3-');
  const bucket = opts.bucket ?? 'registry';
  let port = 0;
  let out = '';
  for (let attempt = 0; ; attempt++) {
    port = await freePortRun();
    try {
      out = (await run(S3_SERVER, ['start', '--port', String(port), '--data', dataDir, '--bucket', bucket], { timeout: 300_000 })).stdout;
      break;
    } catch (err) {
      // Another process may have taken one of the ports meanwhile.
      await run(S3_SERVER, ['stop', '--data', dataDir]).catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.mkdirSync(dataDir);
      if (attempt >= 2) throw err;
    }
  }
  const vars = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  // The SDK must not try a CA bundle on a plain-http endpoint.
  delete process.env.AWS_CA_BUNDLE;
  const proxyPid = () => Number(fs.readFileSync(path.join(dataDir, 'run', 'proxy.pid'), 'utf8'));
  const s3: S3Server = {
    endpoint: vars.S3_ENDPOINT,
    accessKey: vars.S3_ACCESS_KEY,
    secretKey: vars.S3_SECRET_KEY,
    bucket: vars.S3_BUCKET,
    region: vars.S3_REGION,
    dataDir,
    options: (extra = {}) => ({
      bucket: s3.bucket,
      region: s3.region,
      regionendpoint: s3.endpoint,
      forcepathstyle: true,
      accesskey: s3.accessKey,
      secretkey: s3.secretKey,
      ...extra,
    }),
    env: (extra = {}) => ({
      REGISTRY_STORAGE_S3_BUCKET: s3.bucket,
      REGISTRY_STORAGE_S3_REGION: s3.region,
      REGISTRY_STORAGE_S3_REGIONENDPOINT: s3.endpoint,
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_ACCESSKEY: s3.accessKey,
      REGISTRY_STORAGE_S3_SECRETKEY: s3.secretKey,
      ...extra,
    }),
    // its s3 driver uses path-style URLs whenever regionendpoint is set
    distributionStorage: (root, extra = []) =>
      [
        '  s3:',
        `    accesskey: ${s3.accessKey}`,
        `    secretkey: ${s3.secretKey}`,
        `    region: ${s3.region}`,
        `    regionendpoint: ${s3.endpoint}`,
        `    bucket: ${s3.bucket}`,
        `    rootdirectory: ${root}`,
        '    secure: false',
        '    v4auth: true',
        ...extra,
        '  redirect:',
        '    disable: true',
      ].join('\n'),
    async stopProxy() {
      await run(S3_SERVER, ['stop', '--data', dataDir, '--only', 'proxy']);
    },
    async startProxy() {
      await run(S3_SERVER, ['start', '--port', String(port), '--data', dataDir, '--bucket', bucket], { timeout: 120_000 });
    },
    freeze: () => process.kill(proxyPid(), 'SIGSTOP'),
    thaw: () => process.kill(proxyPid(), 'SIGCONT'),
    async stop() {
      try {
        s3.thaw();
      } catch {
        // proxy already stopped
      }
      await run(S3_SERVER, ['stop', '--data', dataDir]);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return s3;
}
