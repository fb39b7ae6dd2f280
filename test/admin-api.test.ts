// The admin API (/berth/v1) on a real berth process over a store with shared
// layers, an index, referrers and untagged images (the GC fixture): every
// endpoint's figures against what the fixture holds, paging, bad input, and
// deletes with what they free.
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { api, errorCode, indexSettled, type ApiReply } from './helpers/admin-client';
import { startBerth, tempDir } from './helpers/berth';
import { buildFixture, dedupe, sumBytes, type FixtureImage } from './helpers/gc-fixture';
import { waitFor } from './helpers/ops-client';
import { blob, pushImage, randomBlob, type Blob } from './helpers/registry-client';
// The contract as the UI reads it: a field the API drops or renames fails here too.
import type { Repo } from '../ui/src/api';

type Body = Record<string, unknown>;

/** What pulling the image fetches: manifest, config, layers, and for an index its children. */
const total = (i: FixtureImage): number => i.bytes.length + sumBytes(i.blobs) + (i.children ?? []).reduce((n, c) => n + total(c), 0);
/** Every blob the image is made of (itself included). */
const parts = (i: FixtureImage): Blob[] => dedupe([blob(i.bytes), ...i.blobs, ...(i.children ?? []).flatMap(parts)]);

t.test('admin API over the GC fixture', async (t) => {
  const root = tempDir('berth-admin-');
  const { fixture } = await buildFixture(new FilesystemDriver({ rootdirectory: root }));
  const berth = await startBerth({ root, env: { REGISTRY_BERTH_USAGE_CACHETTL: '1s' } });
  t.teardown(() => berth.stop());
  const url = berth.url;
  const get = <T = Body>(p: string) => api<T>(url, p);

  // An image with a real config, sharing a layer with nothing but a/app's base.
  const base1 = fixture.tagged[0].blobs[1];
  const config = blob(
    JSON.stringify({
      created: '2026-01-02T03:04:05Z',
      architecture: 'arm64',
      os: 'linux',
      config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/bin', 'MODE=prod'], Labels: { team: 'infra' }, ExposedPorts: { '8080/tcp': {} }, WorkingDir: '/srv', User: 'app' },
      history: [{ created_by: 'ADD base /' }, { created_by: 'ENV MODE=prod', empty_layer: true }, { created_by: 'COPY app /bin/app' }],
    }),
  );
  const own = randomBlob(4321);
  const d = await pushImage(url, 'd/app', '1.0', config, [base1, own]);
  await indexSettled(url);

  const [cur, index, other] = fixture.tagged;
  const dImage: FixtureImage = { repo: 'd/app', ref: '1.0', digest: d.digest, bytes: d.manifest, blobs: [config, base1, own] };
  // Blob digest -> the stored images (tagged or not) that use it.
  const users = new Map<string, FixtureImage[]>();
  for (const i of [...fixture.kept, ...fixture.untagged, dImage].filter((x) => !x.children)) {
    for (const b of i.blobs) users.set(b.digest, [...(users.get(b.digest) ?? []), i]);
  }
  /** Bytes of the images' parts that no other repository's image uses. */
  const uniqueOf = (repo: string, imgs: FixtureImage[]) => sumBytes(dedupe(imgs.flatMap(parts)).filter((b) => !(users.get(b.digest) ?? []).some((u) => u.repo !== repo)));

  await t.test('repositories: figures, sorting, filtering, paging', async (t) => {
    const r = await get<{ repositories: Repo[]; total: number; next?: string }>('/berth/v1/repositories');
    t.equal(r.status, 200);
    t.equal(r.headers.get('cache-control'), 'no-store');
    t.same(
      r.body.repositories.map(({ name, tags, images, logicalBytes }) => ({ name, tags, images, logicalBytes })),
      [
        { name: 'a/app', tags: 2, images: 2, logicalBytes: total(cur) + total(index) },
        { name: 'b/app', tags: 1, images: 1, logicalBytes: total(other) },
        { name: 'c/app', tags: 0, images: 0, logicalBytes: 0 },
        { name: 'd/app', tags: 1, images: 1, logicalBytes: d.manifest.length + config.bytes.length + base1.bytes.length + own.bytes.length },
      ],
    );
    t.equal(r.body.total, 4);
    const byName = new Map(r.body.repositories.map((x) => [x.name, x]));
    // base1 is in every repository; base2 in a/app and b/app: neither is anyone's alone.
    t.equal(byName.get('a/app')!.uniqueBytes, uniqueOf('a/app', [cur, index]), 'a/app: unique bytes exclude shared layers');
    t.equal(byName.get('b/app')!.uniqueBytes, uniqueOf('b/app', [other]), 'b/app: unique bytes');
    t.equal(byName.get('d/app')!.uniqueBytes, uniqueOf('d/app', [dImage]), 'd/app: all but the shared base');
    t.equal(uniqueOf('d/app', [dImage]), d.manifest.length + config.bytes.length + own.bytes.length);
    t.ok(Date.parse(byName.get('d/app')!.lastPush!) > Date.now() - 60_000, 'last push of a pushed tag');

    const names = async (q: string) => (await get<{ repositories: Repo[] }>(`/berth/v1/repositories?${q}`)).body.repositories.map((x) => x.name);
    t.same(await names('sort=size'), [...r.body.repositories].sort((a, b) => b.logicalBytes - a.logicalBytes).map((x) => x.name), 'by size, largest first');
    t.same(await names('sort=size&order=asc'), [...r.body.repositories].sort((a, b) => a.logicalBytes - b.logicalBytes).map((x) => x.name), 'by size, ascending');
    t.same(await names('sort=name&order=desc'), ['d/app', 'c/app', 'b/app', 'a/app']);
    t.same((await names('sort=pushed'))[0], 'd/app', 'most recent push first');
    t.same(await names('q=B/A'), ['b/app'], 'filter: case-insensitive substring');
    const filtered = await get<{ total: number }>('/berth/v1/repositories?q=app&limit=1');
    t.equal(filtered.body.total, 4, 'total counts every match, not the page');

    for (const sort of ['name', 'size', 'pushed', 'unique']) {
      for (const order of ['asc', 'desc']) {
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await get<{ repositories: Repo[]; next?: string }>(`/berth/v1/repositories?sort=${sort}&order=${order}&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
          seen.push(...page.body.repositories.map((x) => x.name));
          cursor = page.body.next;
        } while (cursor && seen.length < 10);
        t.same(seen, await names(`sort=${sort}&order=${order}`), `pages of one: ${sort} ${order}`);
      }
    }
    for (const bad of ['limit=0', 'limit=1001', 'limit=x']) {
      const b = await get(`/berth/v1/repositories?${bad}`);
      t.same([b.status, errorCode(b)], [400, 'PAGINATION_NUMBER_INVALID'], bad);
    }
    const badSort = await get('/berth/v1/repositories?sort=colour');
    t.equal(badSort.status, 400, 'unknown sort');
    const post = await api(url, '/berth/v1/repositories', { method: 'POST' });
    t.same([post.status, errorCode(post), post.headers.get('allow')], [405, 'UNSUPPORTED', 'GET']);
  });

  await t.test('one repository', async (t) => {
    const r = await get<Repo & { deletable: boolean }>('/berth/v1/repositories/a/app');
    t.equal(r.status, 200);
    t.same([r.body.name, r.body.tags, r.body.deletable], ['a/app', 2, true]);
    for (const name of ['nope/app', 'UPPER', 'a/app/more']) {
      const m = await get(`/berth/v1/repositories/${name}`);
      t.same([m.status, errorCode(m)], [404, 'NAME_UNKNOWN'], `${name}: not known`);
    }
  });

  await t.test('tags with what they are', async (t) => {
    const r = await get<{ tags: Body[]; next?: string }>('/berth/v1/repositories/a/app/_tags');
    t.equal(r.status, 200);
    const [multi, v1] = r.body.tags;
    t.match(multi, { name: 'multi', digest: index.digest, kind: 'index', size: total(index), platforms: [{ os: 'linux', architecture: 'arch0' }, { os: 'linux', architecture: 'arch1' }] });
    t.match(v1, { name: 'v1', digest: cur.digest, kind: 'image', size: total(cur), pushedBy: null, referrers: { signatures: 1, sboms: 0, attestations: 0, other: 0 } });
    t.ok(Date.parse(v1.pushedAt as string) > 0, 'pushed-at from the push record');
    const first = await get<{ tags: Body[]; next?: string }>('/berth/v1/repositories/a/app/_tags?limit=1');
    t.same([first.body.tags.length, first.body.next], [1, 'multi']);
    const second = await get<{ tags: Body[]; next?: string }>('/berth/v1/repositories/a/app/_tags?limit=1&cursor=multi');
    t.same(second.body.tags.map((x) => x.name), ['v1']);
    t.notOk(second.body.next);
    const none = await get('/berth/v1/repositories/nope/_tags');
    t.same([none.status, errorCode(none)], [404, 'NAME_UNKNOWN']);
  });

  await t.test('an image in full, with the layers it shares', async (t) => {
    const r = await get<Body & { image: Body & { layers: Body[] } }>('/berth/v1/repositories/d/app/_manifests/1.0');
    t.equal(r.status, 200);
    t.match(r.body, { digest: d.digest, kind: 'image', tags: ['1.0'], manifest: { schemaVersion: 2 }, config: { architecture: 'arm64' } });
    t.match(r.body.image, {
      created: '2026-01-02T03:04:05Z',
      os: 'linux',
      architecture: 'arm64',
      entrypoint: ['/bin/app'],
      cmd: ['--serve'],
      env: ['PATH=/bin', 'MODE=prod'],
      labels: { team: 'infra' },
      exposedPorts: ['8080/tcp'],
      workingDir: '/srv',
      user: 'app',
      history: [{ createdBy: 'ADD base /', emptyLayer: false }, { createdBy: 'ENV MODE=prod', emptyLayer: true }, { createdBy: 'COPY app /bin/app' }],
    });
    const base1Users = users.get(base1.digest)!.filter((u) => u !== dImage);
    t.same(r.body.image.layers, [
      { digest: base1.digest, mediaType: 'application/vnd.oci.image.layer.v1.tar', size: base1.bytes.length, sharedImages: base1Users.length, sharedRepositories: new Set(base1Users.map((u) => u.repo)).size },
      { digest: own.digest, mediaType: 'application/vnd.oci.image.layer.v1.tar', size: own.bytes.length, sharedImages: 0, sharedRepositories: 0 },
    ]);

    const idx = await get<Body & { platforms: Body[] }>(`/berth/v1/repositories/a/app/_manifests/${index.digest}`);
    t.equal(idx.status, 200);
    t.same(
      idx.body.platforms.map((p) => [p.digest, p.size, (p.platform as Body).architecture]),
      index.children!.map((c, i) => [c.digest, total(c), `arch${i}`]),
      'an index: its platforms, each with its size',
    );
    const img = await get<Body & { referrers: Body[] }>(`/berth/v1/repositories/a/app/_manifests/v1`);
    t.match(img.body.referrers, [{ artifactType: 'application/example.sig', kind: 'signature' }]);

    const unknown = await get(`/berth/v1/repositories/a/app/_manifests/sha256:${'0'.repeat(64)}`);
    t.same([unknown.status, errorCode(unknown)], [404, 'MANIFEST_UNKNOWN']);
    const bad = await get('/berth/v1/repositories/a/app/_manifests/sha256:zz');
    t.same([bad.status, errorCode(bad)], [400, 'DIGEST_INVALID']);
    const layerAsManifest = await get(`/berth/v1/repositories/d/app/_manifests/${own.digest}`);
    t.same([layerAsManifest.status, errorCode(layerAsManifest)], [404, 'MANIFEST_UNKNOWN'], 'a layer is not a manifest');
  });

  await t.test('which images contain a blob', async (t) => {
    const r = await get<{ repositories: number; images: Body[]; size: number }>(`/berth/v1/blobs/${base1.digest}/images`);
    t.equal(r.status, 200);
    const expected = users.get(base1.digest)!.map((u) => ({ repository: u.repo, digest: u.digest })).sort((a, b) =>
      a.repository === b.repository ? (a.digest < b.digest ? -1 : 1) : a.repository < b.repository ? -1 : 1,
    );
    t.same(r.body.images.map(({ repository, digest }) => ({ repository, digest })), expected);
    t.same([r.body.repositories, r.body.size], [4, base1.bytes.length]);
    t.same(r.body.images.find((i) => i.digest === cur.digest)!.tags, ['v1'], 'with their tags');
    const paged: Body[] = [];
    let cursor: string | undefined;
    do {
      const p = await get<{ images: Body[]; next?: string }>(`/berth/v1/blobs/${base1.digest}/images?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      paged.push(...p.body.images);
      cursor = p.body.next;
    } while (cursor);
    t.same(paged, r.body.images, 'pages of two add up to the whole');
    const unknown = await get(`/berth/v1/blobs/sha256:${'1'.repeat(64)}/images`);
    t.same([unknown.status, errorCode(unknown)], [404, 'BLOB_UNKNOWN']);
    const orphan = await get(`/berth/v1/blobs/${fixture.orphan.digest}/images`);
    t.same([orphan.status, errorCode(orphan)], [404, 'BLOB_UNKNOWN'], 'a blob no repository uses');
  });

  await t.test('usage: stored, shared, unused, the most shared layers', async (t) => {
    type Usage = { computedAt: string; storedBytes: number; blobs: number; sharedBytes: number; unusedBytes: number; logicalBytes: number; dedupRatio: number; repositories: Repo[]; sharedLayers: Body[] };
    const pushed = Date.now();
    let u!: Usage;
    await waitFor('usage computed after the last push', async () => Date.parse((u = (await get<Usage>('/berth/v1/usage')).body).computedAt) > pushed, 10_000);
    const manifests = [...fixture.kept, ...fixture.untagged, dImage].map((i) => blob(i.bytes));
    const all = dedupe([...fixture.allBlobs, ...manifests, config, own]);
    const base2 = cur.blobs[2];
    t.same([u.storedBytes, u.blobs], [sumBytes(all), all.length], 'every blob once');
    t.equal(u.sharedBytes, base1.bytes.length + base2.bytes.length, 'shared: the two base layers');
    t.equal(u.unusedBytes, fixture.orphan.bytes.length, 'unused: the blob no repository links');
    const list = (await get<{ repositories: Repo[] }>('/berth/v1/repositories')).body.repositories;
    t.equal(u.logicalBytes, list.reduce((n, r) => n + r.logicalBytes, 0));
    t.equal(u.dedupRatio, u.logicalBytes / u.storedBytes);
    t.same(u.repositories.map((r) => r.name), [...list].sort((a, b) => b.uniqueBytes - a.uniqueBytes || (a.name < b.name ? -1 : 1)).map((r) => r.name), 'repositories by unique bytes');
    const layers = u.sharedLayers.map((l) => [l.digest, l.repositories, l.images]);
    t.same(layers, [
      [base1.digest, 4, users.get(base1.digest)!.length],
      [base2.digest, 2, users.get(base2.digest)!.length],
    ]);
  });

  await t.test('deletes: what goes, what GC frees', async (t) => {
    // b/app's own bytes: its config, only-b, its manifest, and the stray layer it links.
    const preview = await get<{ tags: string[]; manifests: string[]; freeableBytes: number }>('/berth/v1/repositories/b/app/_delete');
    t.same(preview.body.tags, ['latest']);
    t.same(preview.body.manifests, [other.digest]);
    const bOwn = [other.blobs[0], other.blobs[3], blob(other.bytes), fixture.strayLink.blob];
    t.equal(preview.body.freeableBytes, sumBytes(bOwn), 'a repository: everything only it uses');
    const tagPreview = await get<{ tags: string[]; untagged: string[]; freeableBytes: number }>('/berth/v1/repositories/d/app/_delete?tag=1.0');
    t.same([tagPreview.body.tags, tagPreview.body.untagged], [['1.0'], [d.digest]]);
    t.equal(tagPreview.body.freeableBytes, d.manifest.length + config.bytes.length + own.bytes.length, 'a tag: its image, once untagged images are collected');
    const childTag = await get<{ freeableBytes: number }>(`/berth/v1/repositories/a/app/_delete?digest=${index.children![0].digest}`);
    t.equal(childTag.body.freeableBytes, 0, 'an index still holds its child: nothing freed');

    const del = await api<Body>(url, '/berth/v1/repositories/b/app', { method: 'DELETE' });
    t.same([del.status, del.body.tags, del.body.manifests, del.body.freeableBytes], [202, 1, 1, sumBytes(bOwn)]);
    t.equal((await get('/berth/v1/repositories/b/app')).status, 404, 'gone from the API');
    t.same(((await get<{ repositories: string[] }>('/v2/_catalog')).body.repositories), ['a/app', 'c/app', 'd/app'], 'and from the catalog');
    t.equal((await get(`/v2/b/app/manifests/latest`)).status, 404, 'and from /v2');
    const after = await get<{ images: Body[] }>(`/berth/v1/blobs/${base1.digest}/images`);
    t.notOk(after.body.images.some((i) => i.repository === 'b/app'), 'its images no longer share base1');

    const delTag = await api(url, '/berth/v1/repositories/a/app/_tags/v1', { method: 'DELETE' });
    t.equal(delTag.status, 202);
    t.same((await get<{ tags: Body[] }>('/berth/v1/repositories/a/app/_tags')).body.tags.map((x) => x.name), ['multi']);
    const delImage = await api<Body>(url, `/berth/v1/repositories/d/app/_manifests/${d.digest}`, { method: 'DELETE' });
    t.same([delImage.status, delImage.body.tags], [202, ['1.0']], 'an image goes with every tag on it');
    t.equal((await get('/v2/d/app/manifests/1.0')).status, 404);
    const byTag = await api(url, '/berth/v1/repositories/a/app/_manifests/multi', { method: 'DELETE' });
    t.same([byTag.status, errorCode(byTag)], [400, 'DIGEST_INVALID'], 'an image is deleted by digest');
    await indexSettled(url);
    const list = await get<{ repositories: Repo[]; total: number }>('/berth/v1/repositories');
    t.same(list.body.repositories.map((x) => [x.name, x.tags]), [['a/app', 1], ['c/app', 0], ['d/app', 0]], 'figures follow the deletes');
    t.equal(list.body.total, 3, 'the total (counted before) follows the deleted repository');
  });
});

t.test('deletes disabled: refused, nothing lost', async (t) => {
  const berth = await startBerth({ deleteEnabled: false });
  t.teardown(() => berth.stop());
  await pushImage(berth.url, 'keep/me', 'v1', randomBlob(10), [randomBlob(100)]);
  await indexSettled(berth.url);
  const r = await api<{ deletable: boolean }>(berth.url, '/berth/v1/repositories/keep/me');
  t.equal(r.body.deletable, false);
  for (const p of ['/berth/v1/repositories/keep/me', '/berth/v1/repositories/keep/me/_tags/v1']) {
    const del: ApiReply = await api(berth.url, p, { method: 'DELETE' });
    t.same([del.status, errorCode(del)], [405, 'UNSUPPORTED'], `DELETE ${p}`);
  }
  t.equal((await api(berth.url, '/v2/keep/me/manifests/v1')).status, 200, 'still there');
});
