// A private containerd + Docker engine for one test file, started by the
// test/fixtures/engines script under a short temp dir and stopped by PID.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { inCI, mustRun, run, startTarget, type Target } from './clients';
import { buildTestImages, plainTempDir, type TestImages } from './images';

/** The fixture lives in the source tree; tests run from dist/test/helpers. */
export const ENGINES_SCRIPT = path.resolve(__dirname, '../../../test/fixtures/engines');

export interface Engines {
  dir: string;
  /** Environment for docker/ctr: DOCKER_HOST, CONTAINERD_ADDRESS, a private DOCKER_CONFIG. */
  env: NodeJS.ProcessEnv;
  storageDriver: 'overlay2' | 'vfs';
  /** The daemons' logs, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

function parseExports(out: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of out.matchAll(/^export (.+)$/gm)) {
    for (const kv of m[1].split(/\s+/)) {
      const eq = kv.indexOf('=');
      if (eq > 0) vars[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  }
  return vars;
}

/**
 * Start containerd (and dockerd unless docker is false, with `registryMirrors` as its
 * registry-mirrors). overlay2 first, vfs when the filesystem can't take it (e.g. a CI
 * machine that is itself a container on overlayfs).
 */
export async function startEngines(opts: { docker?: boolean; registryMirrors?: string[] } = {}): Promise<Engines> {
  // Short: unix socket paths are limited to ~100 bytes.
  const dir = plainTempDir('eng');
  const errors: string[] = [];
  for (const driver of ['overlay2', 'vfs'] as const) {
    const args = ['start', '--data', dir, '--storage-driver', driver];
    if (opts.docker === false) args.push('--no-docker');
    for (const m of opts.registryMirrors ?? []) args.push('--registry-mirror', m);
    const r = await run(ENGINES_SCRIPT, args, { timeoutMs: 90_000 });
    if (r.code !== 0) {
      errors.push(`${driver}: ${r.stderr.trim()}`);
      await run(ENGINES_SCRIPT, ['stop', '--data', dir]);
      continue;
    }
    const dockerConfig = path.join(dir, 'docker-config');
    fs.mkdirSync(dockerConfig, { recursive: true });
    const env = { ...process.env, ...parseExports(r.stdout), DOCKER_CONFIG: dockerConfig };
    // If the test process dies without teardown, don't leave daemons behind.
    const onExit = () => spawnSync(ENGINES_SCRIPT, ['stop', '--data', dir, '--purge'], { stdio: 'ignore' });
    process.once('exit', onExit);
    return {
      dir,
      env,
      storageDriver: driver,
      logs: () =>
        ['containerd.log', 'dockerd.log']
          .map((f) => path.join(dir, f))
          .filter((f) => fs.existsSync(f))
          .map((f) => `--- ${f} (tail)\n` + fs.readFileSync(f, 'utf8').split('\n').slice(-30).join('\n'))
          .join('\n'),
      async stop() {
        process.removeListener('exit', onExit);
        // each daemon may take 20 s to stop, then the store goes: after an image build (GBs
        // of layers) the whole took over 60 s on a loaded machine
        await mustRun(ENGINES_SCRIPT, ['stop', '--data', dir, '--purge'], { timeoutMs: 240_000 });
      },
    };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`engines did not start:\n${errors.join('\n')}`);
}

/**
 * PEM text of the CAs this machine adds to the system's (e.g. a TLS-intercepting
 * proxy's), for the Dockerfile's EXTRA_CA_CERTS build argument: npm inside a build must
 * trust them too. Empty when there are none.
 */
/**
 * For tests that build and run images: why they cannot run here ('' when they
 * can: root, and these programs installed) and the tap skip for that, which is
 * never taken under CI=true (there the test runs and fails).
 */
export function imageTestNeeds(programs: string[]): { unmet: string; skip: string | false } {
  const missing = programs.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  const unmet = process.getuid?.() !== 0 ? 'needs root (dockerd, debootstrap)' : missing.length ? `not installed: ${missing.join(', ')}` : '';
  return { unmet, skip: unmet && !inCI() ? unmet : false };
}

/** The environment for docker: the engine at DOCKER_HOST, or one started for this test and stopped at its end. */
export async function dockerEnv(t: Test): Promise<NodeJS.ProcessEnv> {
  if (process.env.DOCKER_HOST) return { ...process.env };
  const engines = await startEngines();
  t.teardown(() => engines.stop());
  return engines.env;
}

/** Import a one-file image as `ref` (in folder `work`), push it, remove it and pull it back: its image id before and after. */
export async function dockerPushPull(docker: (...args: string[]) => Promise<string>, work: string, ref: string): Promise<{ pushed: string; pulled: string }> {
  fs.writeFileSync(path.join(work, 'hello.txt'), `hello ${crypto.randomUUID()}\n`);
  await mustRun('tar', ['-C', work, '-cf', path.join(work, 'hello.tar'), 'hello.txt']);
  await docker('import', path.join(work, 'hello.tar'), ref);
  const pushed = await docker('image', 'inspect', '-f', '{{.Id}}', ref);
  await docker('push', ref);
  await docker('rmi', ref);
  await docker('pull', ref);
  return { pushed, pulled: await docker('image', 'inspect', '-f', '{{.Id}}', ref) };
}

export function localCACerts(dir = '/usr/local/share/ca-certificates'): string {
  if (!fs.existsSync(dir)) return '';
  return fs.readdirSync(dir).filter((f) => f.endsWith('.crt')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
}

export interface ClientFixture {
  reg: Target;
  imgs: TestImages;
  /** Only when asked for. */
  engines?: Engines;
}

/**
 * The set-up every client test file shares: before its tests, the registry
 * under test (and the engines, when asked) and the test images; after them,
 * everything stopped and removed, `scratch` included. `ready` receives them.
 */
export function clientFixture(
  t: Test,
  opts: { engines?: { docker?: boolean }; scratch?: string },
  ready: (f: ClientFixture) => void,
): void {
  let f: Partial<ClientFixture> = {};
  t.before(async () => {
    f = opts.engines ? await startTargetAndEngines(opts.engines) : { reg: await startTarget() };
    f.imgs = buildTestImages();
    t.comment(`registry under test: ${f.reg!.kind} at ${f.reg!.host}`);
    ready(f as ClientFixture);
  });
  t.teardown(async () => {
    await Promise.all([f.reg?.stop(), f.engines?.stop()]);
    f.imgs?.cleanup();
    if (opts.scratch) fs.rmSync(opts.scratch, { recursive: true, force: true });
  });
}

/**
 * Start the registry under test and the engines side by side; if either fails,
 * stop the other (a live child process would keep the test file from ending).
 */
export async function startTargetAndEngines(opts: { docker?: boolean } = {}): Promise<{ reg: Target; engines: Engines }> {
  const [reg, engines] = await Promise.allSettled([startTarget(), startEngines(opts)]);
  if (reg.status === 'fulfilled' && engines.status === 'fulfilled') return { reg: reg.value, engines: engines.value };
  await Promise.all([reg.status === 'fulfilled' && reg.value.stop(), engines.status === 'fulfilled' && engines.value.stop()]);
  throw reg.status === 'rejected' ? reg.reason : (engines as PromiseRejectedResult).reason;
}
