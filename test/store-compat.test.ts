// Store compatibility with CNCF distribution 2.8.2, both ways: one registry
// writes a store (blobs, images, an index, tags, a mounted layer), stops, and
// the other serves that same root directory; everything must come back
// byte-identical, and the second registry can keep writing to it.
import t, { type Test } from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { haveDistribution, startDistribution } from './helpers/distribution';
import {
  GeneratedBlob,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  OciClient,
  bufferSource,
  imageIndex,
  imageManifest,
  sha256,
  type BlobSource,
  type Descriptor,
} from './helpers/oci-client';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

type Start = (root: string) => Promise<{ url: string; stop(): Promise<unknown> }>;
const registries: Record<string, Start> = {
  berth: (root) => startBerth({ root }),
  distribution: (root) => startDistribution({ root }),
};

interface Fixture {
  blobs: { repo: string; src: BlobSource }[];
  manifests: { repo: string; ref: string; body: Buffer; mediaType: string }[];
  tags: Record<string, string[]>;
}

const desc = (mediaType: string, src: { digest?: string; size: number }): Descriptor => ({ mediaType, digest: src.digest!, size: src.size });

/** Pushes two single-platform images, an index over them, a Docker v2 image and a mounted layer. */
async function writeFixture(t: Test, c: OciClient): Promise<Fixture> {
  const fx: Fixture = { blobs: [], manifests: [], tags: {} };
  const app = 'compat/app';
  const tool = 'compat/team/tool';
  const shared = new GeneratedBlob('compat-shared', 3 * 1024 * 1024 + 11);
  const amdLayer = new GeneratedBlob('compat-amd64', 1024 * 1024);
  const armLayer = new GeneratedBlob('compat-arm64', 700 * 1000);
  const amdConfig = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers' } }));
  const armConfig = bufferSource(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers' } }));
  // Both upload styles, so both of the writer's commit paths are covered.
  await c.pushBlobChunked(app, shared, 1024 * 1024);
  await c.pushBlob(app, amdLayer);
  await c.pushBlobChunked(app, armLayer, 256 * 1024);
  await c.pushBlob(app, amdConfig);
  await c.pushBlob(app, armConfig);
  for (const src of [shared, amdLayer, armLayer, amdConfig, armConfig]) fx.blobs.push({ repo: app, src });

  const amd = imageManifest(desc(OCI_CONFIG, amdConfig), [desc(OCI_LAYER, shared), desc(OCI_LAYER, amdLayer)]);
  const arm = imageManifest(desc(OCI_CONFIG, armConfig), [desc(OCI_LAYER, shared), desc(OCI_LAYER, armLayer)]);
  const index = imageIndex([
    { ...desc(OCI_MANIFEST, { digest: sha256(amd), size: amd.length }), platform: { architecture: 'amd64', os: 'linux' } },
    { ...desc(OCI_MANIFEST, { digest: sha256(arm), size: arm.length }), platform: { architecture: 'arm64', os: 'linux' } },
  ]);
  await c.putManifest(app, 'amd64', amd, OCI_MANIFEST);
  await c.putManifest(app, sha256(arm), arm, OCI_MANIFEST);
  await c.putManifest(app, 'v1', index, OCI_INDEX);
  await c.putManifest(app, 'latest', index, OCI_INDEX);
  fx.manifests.push(
    { repo: app, ref: 'amd64', body: amd, mediaType: OCI_MANIFEST },
    { repo: app, ref: sha256(arm), body: arm, mediaType: OCI_MANIFEST },
    { repo: app, ref: 'v1', body: index, mediaType: OCI_INDEX },
    { repo: app, ref: 'latest', body: index, mediaType: OCI_INDEX },
  );
  fx.tags[app] = ['amd64', 'latest', 'v1'];

  // A second repository: the shared layer mounted, not re-uploaded.
  t.ok(await c.mountBlob(tool, shared.digest!, app), 'writer mounts the shared layer');
  const toolConfig = bufferSource(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/tool'] } }));
  await c.pushBlob(tool, toolConfig);
  fx.blobs.push({ repo: tool, src: shared }, { repo: tool, src: toolConfig });
  const docker = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: desc(DOCKER_CONFIG, toolConfig),
      layers: [desc(DOCKER_LAYER, shared)],
    }),
  );
  await c.putManifest(tool, '1.0', docker, DOCKER_MANIFEST);
  fx.manifests.push({ repo: tool, ref: '1.0', body: docker, mediaType: DOCKER_MANIFEST });
  fx.tags[tool] = ['1.0'];
  return fx;
}

async function verifyFixture(t: Test, c: OciClient, fx: Fixture) {
  const catalog = await c.catalog(1);
  t.same(catalog.filter((n) => n.startsWith('compat/')).sort(), Object.keys(fx.tags).sort(), 'catalog lists the repositories');
  for (const [repo, tags] of Object.entries(fx.tags)) t.same((await c.tags(repo)).sort(), tags, `tags of ${repo}`);
  for (const { repo, src } of fx.blobs) {
    const digest = src.digest!;
    const head = await c.headBlob(repo, digest);
    t.equal(head.status, 200, `HEAD ${repo}@${digest}`);
    t.equal(Number(head.headers['content-length']), src.size, 'HEAD Content-Length');
    t.same(await c.pullBlob(repo, digest), { status: 200, digest, size: src.size }, `blob ${repo}@${digest} byte-identical`);
  }
  for (const m of fx.manifests) {
    const digest = sha256(m.body);
    for (const ref of new Set([m.ref, digest])) {
      const r = await c.getManifest(m.repo, ref);
      t.equal(r.status, 200, `manifest ${m.repo}:${ref}`);
      t.ok(r.body.equals(m.body), `manifest ${m.repo}:${ref} byte-identical`);
      t.equal(r.headers['content-type'], m.mediaType, 'Content-Type');
      t.equal(r.headers['docker-content-digest'], digest, 'Docker-Content-Digest');
    }
  }
  // The store stays writable: tag an existing manifest and push a new blob.
  const [first] = fx.manifests;
  await c.putManifest(first.repo, 'retagged', first.body, first.mediaType);
  t.ok((await c.getManifest(first.repo, 'retagged')).body.equals(first.body), 'reader can tag an existing manifest');
  const extra = bufferSource('written by the reader');
  await c.pushBlob(first.repo, extra);
  t.same(await c.pullBlob(first.repo, extra.digest), { status: 200, digest: extra.digest, size: extra.size }, 'reader can push a blob');
}

const missing = !haveDistribution();
if (missing && process.env.CI === 'true') {
  t.fail('distribution 2.8.2 (/usr/bin/docker-registry) is required under CI=true: apt-get install docker-registry');
}

for (const [writer, reader] of [
  ['berth', 'distribution'],
  ['distribution', 'berth'],
] as const) {
  t.test(`${reader} serves a store ${writer} wrote`, { skip: missing && 'distribution 2.8.2 not installed (apt-get install docker-registry)' }, async (t) => {
    const root = tempDir('berth-compat-');
    const w = await registries[writer](root);
    t.teardown(() => w.stop());
    const wc = new OciClient(w.url);
    let fx: Fixture;
    try {
      fx = await writeFixture(t, wc);
    } finally {
      wc.close();
    }
    await w.stop();
    const r = await registries[reader](root);
    t.teardown(() => r.stop());
    const rc = new OciClient(r.url);
    t.teardown(() => rc.close());
    await verifyFixture(t, rc, fx);
  });
}
