// The two servers under test: each started on fresh, private storage of the
// chosen backend (filesystem or S3), seeded with the catalog and tag-list
// fixtures written straight in distribution's layout.
import fs from 'node:fs';
import path from 'node:path';
import { startBerth } from '../test/helpers/berth';
import { startDistribution } from '../test/helpers/distribution';
import { OCI_CONFIG, OCI_LAYER, OciClient, imageManifest, sha256 } from '../test/helpers/oci-client';
import type { Managed } from '../test/helpers/process';
import { startS3, type S3Server } from '../test/helpers/s3';
import { S3Driver } from '../storage/drivers/s3';
import { BACKEND_NAME, MiB, ONLY, PULLERS, REPOS, TAGS, opt, usage } from './options';
import { log, seconds, type Server } from './report';

type Kind = Server['kind'];

/** A file of a distribution-layout store: key under the storage root, content. */
type SeedFile = [key: string, data: Buffer];

/**
 * A storage backend starts one server of a kind on fresh, private storage
 * holding the seed files; `cleanup` removes that storage, `close` anything the
 * backend shares between both servers.
 */
interface Backend {
  /** Throughput targets, berth/distribution. */
  targets: { push: number; pull: number };
  start(kind: Kind, label: string, seed: Iterable<SeedFile>): Promise<Managed & { cleanup(): void }>;
  close?(): Promise<void>;
}

/** Node options and environment for berth: --cpu-prof, --berth-node-args, --berth-env; access log off. */
function berthExtras(): { nodeArgs: string[]; env: Record<string, string> } {
  const nodeArgs = opt['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opt['cpu-prof'])}`] : [];
  nodeArgs.push(...opt['berth-node-args']!.split(' ').filter(Boolean));
  const env: Record<string, string> = { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' };
  for (const kv of opt['berth-env']!.split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i < 1) usage(`--berth-env takes K=V,K=V, got ${kv}`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { nodeArgs, env };
}

/** Runs put on every item with at most `concurrency` in flight. */
async function bounded<T>(items: Iterable<T>, concurrency: number, put: (item: T) => Promise<void>) {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let r = it.next(); !r.done; r = it.next()) await put(r.value);
    }),
  );
}

const filesystem: Backend = {
  targets: { push: 2, pull: 1.2 },
  async start(kind, _label, seed) {
    const root = fs.mkdtempSync(path.join(opt.dir!, `bench-${kind}-`));
    const cleanup = () => fs.rmSync(root, { recursive: true, force: true });
    try {
      for (const [key, data] of seed) {
        fs.mkdirSync(path.dirname(path.join(root, key)), { recursive: true });
        fs.writeFileSync(path.join(root, key), data);
      }
      const m = kind === 'berth' ? await startBerth({ root, ...berthExtras() }) : await startDistribution({ root });
      return Object.assign(m, { cleanup });
    } catch (err) {
      cleanup();
      throw err;
    }
  },
};

/**
 * One Swift s3api store (deploy/s3/s3-server) shared by both servers, each
 * under its own rootdirectory of the one bucket, both with the same part size
 * and with redirects disabled, so that blob pulls stream through the registry
 * (with redirects on, a client would fetch from Swift and the registry would
 * not be measured at all).
 */
function s3Backend(): Backend {
  let store: Promise<S3Server> | undefined;
  const CHUNK_SIZE = 10 * MiB; // both drivers' default, set explicitly
  return {
    targets: { push: 1.2, pull: 1.2 },
    async start(kind, label, seed) {
      const s3 = await (store ??= startS3());
      const root = `/bench-${label.replace('#', '-')}`;
      // The helpers want a local root even when storage is elsewhere; keep it ours to remove.
      const scratch = fs.mkdtempSync(path.join(opt.dir!, `bench-${kind}-`));
      const cleanup = () => fs.rmSync(scratch, { recursive: true, force: true });
      try {
        const driver = new S3Driver(s3.options({ rootdirectory: root }));
        const t0 = process.hrtime.bigint();
        let n = 0;
        try {
          await bounded(seed, 32, ([key, data]) => (n++, driver.putContent(`/${key}`, data)));
        } finally {
          await driver.close();
        }
        log(`${label}: wrote ${n} fixture objects under s3://${s3.bucket}${root} in ${seconds(t0).toFixed(1)} s`);
        const extras = berthExtras();
        const m =
          kind === 'berth'
            ? await startBerth({
                root: scratch,
                nodeArgs: extras.nodeArgs,
                env: s3.env({
                  ...extras.env,
                  REGISTRY_STORAGE_S3_ROOTDIRECTORY: root,
                  REGISTRY_STORAGE_S3_CHUNKSIZE: String(CHUNK_SIZE),
                  REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
                  REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false',
                  ...(opt.blobcache && { REGISTRY_BERTH_BLOBCACHE_ROOTDIRECTORY: path.join(scratch, 'blobcache') }),
                }),
              })
            : await startDistribution({
                root: scratch,
                storageYaml: s3.distributionStorage(root, [`    chunksize: ${CHUNK_SIZE}`]),
              });
        return Object.assign(m, { cleanup });
      } catch (err) {
        cleanup();
        throw err;
      }
    },
    async close() {
      // Stopping the store removes its data, both prefixes included.
      if (store) await (await store).stop();
    },
  };
}

const backends: Record<string, () => Backend> = { filesystem: () => filesystem, s3: s3Backend };
export const BACKEND = backends[BACKEND_NAME]();

export const repoName = (i: number) => `catalog/r${String(i).padStart(5, '0')}`;
export const tagName = (i: number) => `t${String(i).padStart(5, '0')}`;

/**
 * The catalog and tag-list fixtures, written in distribution's v2 layout
 * before the servers start: REPOS repositories sharing one image tagged v1,
 * and bench/tags with TAGS tags. Pushing them through distribution's fsyncs
 * would take minutes of the bench's budget.
 */
function* seedFiles(): Generator<SeedFile> {
  const v2 = 'docker/registry/v2';
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = Buffer.alloc(4096, 7);
  const blobs = [
    { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
    { mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length },
  ];
  const manifest = imageManifest(blobs[0], [blobs[1]]);
  const mdigest = sha256(manifest);
  const hex = (d: string) => d.slice('sha256:'.length);
  for (const [d, data] of [[blobs[0].digest, config], [blobs[1].digest, layer], [mdigest, manifest]] as const) {
    yield [`${v2}/blobs/sha256/${hex(d).slice(0, 2)}/${hex(d)}/data`, data];
  }
  const link = (d: string) => Buffer.from(d);
  const repo = function* (name: string, tags: string[]): Generator<SeedFile> {
    const r = `${v2}/repositories/${name}`;
    for (const b of blobs) yield [`${r}/_layers/sha256/${hex(b.digest)}/link`, link(b.digest)];
    yield [`${r}/_manifests/revisions/sha256/${hex(mdigest)}/link`, link(mdigest)];
    for (const t of tags) {
      yield [`${r}/_manifests/tags/${t}/current/link`, link(mdigest)];
      yield [`${r}/_manifests/tags/${t}/index/sha256/${hex(mdigest)}/link`, link(mdigest)];
    }
  };
  if (ONLY.has('catalog') || ONLY.has('walk')) for (let i = 0; i < REPOS; i++) yield* repo(repoName(i), ['v1']);
  if (ONLY.has('tags')) yield* repo('bench/tags', Array.from({ length: TAGS }, (_, i) => tagName(i)));
}

export async function startServer(kind: Kind, label: string): Promise<Server & { cleanup(): void }> {
  const m = await BACKEND.start(kind, label, seedFiles());
  // Enough sockets for the widest workload (the mixed load's and concurrent push's clients).
  const client = new OciClient(m.url, { maxSockets: Math.max(PULLERS, 64) });
  return {
    label,
    kind,
    url: m.url,
    pid: m.proc.pid!,
    client,
    diagnose: () => `${label}: exit ${m.proc.exitCode ?? m.proc.signalCode ?? '(running)'}\n${m.output().slice(-4000)}`,
    stop: async () => {
      client.close();
      return m.stop();
    },
    cleanup: m.cleanup,
  };
}
