// Push, manifests: every media type by tag and by digest, read back unchanged,
// and the ways a manifest can be rejected.
import { describe } from './client';
import type { Expect } from './check';
import {
  EMPTY, MT, artifact, descriptor, digestOf, dockerList, dockerManifest, imageConfig, manifest, ociIndex, ociManifest, randomBlob, unknownDigest,
  type Blob, type Manifest,
} from './content';
import { expectManifest } from './pull';
import { SetupError, type Suite } from './suite';

const C = 'push';

async function expectPushed(s: Suite, e: Expect, repo: string, ref: string, m: Manifest): Promise<void> {
  const res = await s.putManifest(repo, ref, m);
  e.status(res, 201);
  e.header(res, 'location', undefined, 'MUST');
  e.header(res, 'docker-content-digest', m.digest, 'SHOULD');
  expectManifest(e, await s.getManifest(repo, ref), m);
  expectManifest(e, await s.getManifest(repo, m.digest), m);
  expectManifest(e, await s.getManifest(repo, ref, 'HEAD'), m);
}

export async function pushManifests(s: Suite): Promise<void> {
  const repo = s.repo('images');
  const layer = randomBlob(1024);
  const config = imageConfig([layer]);
  const dockerLayer = randomBlob(1024);
  const dockerConfig = imageConfig([dockerLayer]);
  const payload = randomBlob(200);
  const ready = await s.check(C, 'set-up: push configs and layers for manifests', async () => {
    for (const b of [layer, config, dockerLayer, dockerConfig, payload, EMPTY]) await s.pushBlob(repo, b);
  });
  const need = () => {
    if (!ready) throw new SetupError('blobs could not be pushed');
  };

  const image = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)], { annotations: { 'org.berth.kind': 'image' } });
  const image2 = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)], { annotations: { 'org.berth.kind': 'arm' } });
  const docker = dockerManifest(descriptor(MT.dockerConfig, dockerConfig), [descriptor(MT.dockerLayer, dockerLayer)]);
  const index = ociIndex([
    descriptor(MT.ociManifest, image, { platform: { architecture: 'amd64', os: 'linux' } }),
    descriptor(MT.ociManifest, image2, { platform: { architecture: 'arm64', os: 'linux' } }),
  ]);
  const list = dockerList([descriptor(MT.dockerManifest, docker, { platform: { architecture: 'amd64', os: 'linux' } })]);
  const art = artifact('application/vnd.berth.conformance.test', [descriptor('application/vnd.berth.conformance.payload', payload)]);

  const cases: [string, string, Manifest][] = [
    ['OCI image manifest by tag', 'image', image],
    ['OCI image manifest by digest', image2.digest, image2],
    ['OCI image index by tag', 'index', index],
    ['Docker v2 schema 2 manifest by tag', 'docker', docker],
    ['Docker manifest list by tag', 'list', list],
    ['artifact manifest (artifactType, empty config) by tag', 'artifact', art],
  ];
  for (const [what, ref, m] of cases) {
    await s.check(C, `PUT ${what}: 201, Location, Docker-Content-Digest; read back unchanged`, async (e) => {
      need();
      await expectPushed(s, e, repo, ref, m);
    });
  }

  await s.check(C, 'PUT manifest by sha512 digest: 201, GET by it', async (e) => {
    need();
    const m = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)], { annotations: { 'org.berth.kind': 'sha512' } });
    const d512 = digestOf(m.data, 'sha512');
    const res = await s.putManifest(repo, d512, m);
    if (!e.status(res, 201, 'SHOULD')) return;
    const got = await s.getManifest(repo, d512);
    e.status(got, 200);
    e.that(got.body.equals(m.data), 'MUST', `${describe(got)}: body differs from the pushed bytes`);
  });

  await s.check(C, 'PUT the same manifest under a second tag: 201', async (e) => {
    need();
    await expectPushed(s, e, repo, 'image-again', image);
  });

  await s.check(C, 'PUT manifest to an existing tag moves the tag', async (e) => {
    need();
    await s.pushManifest(repo, 'moving', image);
    await expectPushed(s, e, repo, 'moving', docker);
  });

  await s.check(C, 'tags differing only in case are distinct', async (e) => {
    need();
    await s.pushManifest(repo, 'CaseTag', image);
    await s.pushManifest(repo, 'casetag', docker);
    expectManifest(e, await s.getManifest(repo, 'CaseTag'), image);
    expectManifest(e, await s.getManifest(repo, 'casetag'), docker);
  });

  for (const [why, tag] of [
    ['starting with a dot', '.hidden'],
    ['of 129 characters', 't'.repeat(129)],
  ]) {
    await s.check(C, `PUT manifest with a tag ${why}: 400 TAG_INVALID`, async (e) => {
      need();
      e.error(await s.putManifest(repo, tag, image), 400, 'TAG_INVALID', 'SHOULD');
    });
  }

  await s.check(C, 'PUT manifest by a digest that does not match the body: 400 DIGEST_INVALID', async (e) => {
    need();
    e.error(await s.putManifest(repo, unknownDigest(), image), 400, 'DIGEST_INVALID', 'SHOULD');
  });

  await s.check(C, 'PUT manifest that is not JSON: 400 MANIFEST_INVALID', async (e) => {
    const res = await s.req('PUT', `/v2/${repo}/manifests/not-json`, { body: '{"schemaVersion": 2, nope', headers: { 'content-type': MT.ociManifest } });
    e.error(res, 400, 'MANIFEST_INVALID', 'SHOULD');
    e.status(await s.getManifest(repo, 'not-json'), 404);
  });

  await s.check(C, 'PUT manifest whose mediaType differs from Content-Type: 400 MANIFEST_INVALID', async (e) => {
    need();
    e.error(await s.putManifest(repo, 'mismatch', image, MT.dockerManifest), 400, 'MANIFEST_INVALID', 'SHOULD');
  });

  const missing = (what: string, m: Manifest, codes: string[], level: 'SHOULD' | 'MAY') =>
    s.check(C, `PUT manifest ${what}: 400 ${codes.join(' or ')}`, async (e) => {
      need();
      const res = await s.putManifest(repo, 'missing', m);
      if (res.status === 201) return e.fail(level, `${describe(res)}: accepted a manifest ${what}`);
      e.error(res, 400, codes, 'SHOULD');
    });
  const ghost: Blob = randomBlob(64);
  await missing('with a missing layer', ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, ghost)]), ['MANIFEST_BLOB_UNKNOWN'], 'SHOULD');
  await missing('with a missing config', ociManifest(descriptor(MT.ociConfig, ghost), [descriptor(MT.ociLayer, layer)]), ['MANIFEST_BLOB_UNKNOWN'], 'SHOULD');
  await missing('of a Docker image with a missing layer', dockerManifest(descriptor(MT.dockerConfig, dockerConfig), [descriptor(MT.dockerLayer, ghost)]), ['MANIFEST_BLOB_UNKNOWN'], 'SHOULD');
  await missing('index with a missing child manifest', ociIndex([descriptor(MT.ociManifest, ghost)]), ['MANIFEST_BLOB_UNKNOWN', 'MANIFEST_UNKNOWN'], 'MAY');

  // Content a manifest must not be stored with, whatever JSON.parse-like readers let through.
  const base = { schemaVersion: 2, mediaType: MT.ociManifest, config: descriptor(MT.ociConfig, config), layers: [descriptor(MT.ociLayer, layer)] };
  type RefusedOptions = { contentType?: string; before?: () => Promise<unknown> };
  const refused = (what: string, data: Buffer, codes: string[], level: 'SHOULD' | 'MAY', opts: RefusedOptions = {}) =>
    s.check(C, `PUT manifest ${what}: 400 ${codes.join(' or ')}, nothing stored`, async (e) => {
      need();
      await opts.before?.();
      const res = await s.req('PUT', `/v2/${repo}/manifests/refused`, { body: data, headers: { 'content-type': opts.contentType ?? MT.ociManifest } });
      if (res.status === 201) return e.fail(level, `${describe(res)}: accepted a manifest ${what}`);
      e.error(res, 400, codes, 'SHOULD');
      const got = await s.getManifest(repo, digestOf(data));
      e.that(got.status === 404, 'MUST', `${describe(got)}: the refused manifest is served (${got.status})`);
    });
  const json = (m: object) => Buffer.from(JSON.stringify(m));
  // An annotation value "@" replaced by raw bytes.
  const withBytes = (bytes: number[]) => {
    const [head, tail] = JSON.stringify({ ...base, annotations: { 'org.berth.bytes': '@' } }).split('@');
    return Buffer.concat([Buffer.from(head), Buffer.from(bytes), Buffer.from(tail)]);
  };
  const sizes = 'MANIFEST_INVALID SIZE_INVALID'.split(' ');
  await refused('whose layer size is 0 (the blob is larger)', json({ ...base, layers: [descriptor(MT.ociLayer, layer, { size: 0 })] }), sizes, 'SHOULD');
  await refused('whose config size is 1 (the blob is larger)', json({ ...base, config: descriptor(MT.ociConfig, config, { size: 1 }) }), sizes, 'SHOULD');
  await refused('index whose child size is off by one', json(ociIndex([descriptor(MT.ociManifest, image, { size: image.size + 1 })]).json), sizes, 'SHOULD', {
    contentType: MT.ociIndex,
    before: () => s.pushManifest(repo, 'image', image),
  });
  await refused('with bytes that are not UTF-8', withBytes([0xff, 0xfe]), ['MANIFEST_INVALID'], 'SHOULD');
  await refused('with an overlong UTF-8 sequence', withBytes([0xc0, 0xaf]), ['MANIFEST_INVALID'], 'SHOULD');
  // Readers that keep the first "layers" see a layer the registry never checked.
  const twice = JSON.stringify(base).replace('{', `{"layers":[${JSON.stringify(descriptor(MT.ociLayer, ghost))}],`);
  await refused('with a duplicate key', Buffer.from(twice), ['MANIFEST_INVALID', 'MANIFEST_BLOB_UNKNOWN'], 'SHOULD');
  await refused('with an annotation value that is not a string', json({ ...base, annotations: { 'org.berth.n': 1 } }), ['MANIFEST_INVALID'], 'SHOULD');
  await refused('with a layer annotation value that is not a string', json({ ...base, layers: [{ ...descriptor(MT.ociLayer, layer), annotations: { x: true } }] }), ['MANIFEST_INVALID'], 'SHOULD');
  const deep = JSON.stringify(base).replace('{', `{"org.berth.deep":${'['.repeat(100_000)}${']'.repeat(100_000)},`);
  await refused('nested 100000 levels deep in an unknown field', Buffer.from(deep), ['MANIFEST_INVALID'], 'MAY');

  // Manifests up to 4 MiB must be accepted; larger ones may be refused.
  const padded = (total: number): Manifest => {
    const probe = manifest({ ...base, annotations: { pad: '' } });
    return manifest({ ...base, annotations: { pad: 'x'.repeat(total - probe.size) } });
  };
  await s.check(C, 'PUT manifest of exactly 4 MiB: 201', async (e) => {
    need();
    const m = padded(4 * 1024 * 1024);
    const res = await s.putManifest(repo, 'four-mib', m);
    e.status(res, 201, 'SHOULD');
  });

  await s.check(C, 'PUT manifest of 5 MiB: 413, or 400 with an error code', async (e) => {
    need();
    const m = padded(5 * 1024 * 1024);
    const res = await s.putManifest(repo, 'five-mib', m);
    if (res.status === 201) return e.fail('SHOULD', `${describe(res)}: accepted a 5 MiB manifest`);
    if (res.status === 413) return;
    e.error(res, [413, 400], ['MANIFEST_INVALID', 'SIZE_INVALID'], 'SHOULD');
  });
}
