// The GC correctness suite, parameterised by a driver factory so it runs on
// the filesystem (test/gc-collect.test.ts) and on S3 alike.
import type { Test } from 'tap';
import { parseDigest } from '../../storage/digest';
import { collectGarbage, type GcOptions } from '../../storage/gc';
import { paths } from '../../storage/paths';
import { listBlobs } from '../../storage/scan';
import type { ContentStore } from '../../storage/store';
import { buildFixture, dedupe, sumBytes, type DriverFactory, type FixtureImage } from './gc-fixture';
import { blob } from './registry-client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readable(store: ContentStore, img: FixtureImage): Promise<boolean> {
  try {
    const m = await store.getManifest(img.repo, img.digest);
    if (!m.bytes.equals(img.bytes)) return false;
    for (const b of img.blobs) {
      const chunks: Buffer[] = [];
      for await (const c of await store.readBlob(await store.statBlob(img.repo, b.digest))) chunks.push(c as Buffer);
      if (!Buffer.concat(chunks).equals(b.bytes)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

export function gcSuite(t: Test, factory: DriverFactory): void {
  const withFixture = async (t: Test, fn: (ctx: Awaited<ReturnType<typeof buildFixture>> & { gc: (o?: Partial<GcOptions>) => ReturnType<typeof collectGarbage> }) => Promise<void>) => {
    const { driver, cleanup } = await factory();
    t.teardown(cleanup);
    const built = await buildFixture(driver);
    // Everything in the fixture is older than the collection that follows.
    await sleep(1100);
    await fn({ ...built, gc: (o = {}) => collectGarbage(driver, { minAgeMs: 0, concurrency: 8, ...o }) });
  };

  t.test('default run: stray links and unlinked blobs go, every manifest stays', (t) =>
    withFixture(t, async ({ store, fixture, gc }) => {
      const before = await listBlobs(store.driver, 8);
      const r = await gc();
      t.equal(r.blobsDeleted, 2, 'the stray layer and the orphan blob');
      t.equal(r.bytesFreed, fixture.strayLink.blob.bytes.length + fixture.orphan.bytes.length, 'bytes freed');
      t.equal(r.layerLinksDeleted, 1);
      t.same(r.removed.layerLinks, [`b/app@${fixture.strayLink.blob.digest}`]);
      t.equal(r.manifestsDeleted, 0);
      const after = await listBlobs(store.driver, 8);
      t.same(after, before.filter((d) => d !== fixture.orphan.digest && d !== fixture.strayLink.blob.digest), 'exactly those two blobs removed');
      for (const img of [...fixture.kept, ...fixture.untagged]) t.ok(await readable(store, img), `${img.repo}@${img.ref} still pulls`);
    }),
  );

  t.test('--delete-untagged: overwritten, untagged and orphaned referrers go with their own blobs', (t) =>
    withFixture(t, async ({ store, fixture, gc }) => {
      const before = await listBlobs(store.driver, 8);
      const dry = await gc({ deleteUntagged: true, dryRun: true });
      t.same(await listBlobs(store.driver, 8), before, 'dry run deletes nothing');
      const r = await gc({ deleteUntagged: true });
      const manifestBlobs = fixture.untagged.map((i) => blob(i.bytes));
      const freed = dedupe([...fixture.untaggedOnlyBlobs, ...manifestBlobs, fixture.strayLink.blob, fixture.orphan]);
      t.same(dry.removed, r.removed, 'the dry run listed exactly what the real run removed');
      t.equal(r.manifestsDeleted, 3);
      t.same(r.removed.manifests.sort(), fixture.untagged.map((i) => `${i.repo}@${i.digest}`).sort());
      t.same(r.removed.blobs.sort(), freed.map((b) => b.digest).sort(), 'exactly the unreachable blobs');
      t.equal(r.bytesFreed, sumBytes(freed));
      t.same(await listBlobs(store.driver, 8), before.filter((d) => !freed.some((b) => b.digest === d)));
      for (const img of fixture.kept) t.ok(await readable(store, img), `${img.repo}@${img.ref} still pulls`);
      for (const img of fixture.untagged) t.notOk(await readable(store, img), `${img.repo}@${img.digest.slice(0, 19)} is gone`);
      const cur = fixture.kept[0];
      const refs = await store.referrers(cur.repo, cur.digest);
      t.same(refs.map((d) => d.digest), [fixture.kept[1].digest], 'the kept referrer is still listed');
      t.same(await store.referrers('a/app', fixture.untagged[0].digest), [], 'the removed referrer left the index');
      const again = await gc({ deleteUntagged: true });
      t.equal(again.blobsDeleted + again.manifestsDeleted + again.layerLinksDeleted, 0, 'a second run finds nothing');
    }),
  );

  t.test('--min-age protects recent content', (t) =>
    withFixture(t, async ({ store, gc }) => {
      const before = await listBlobs(store.driver, 8);
      const r = await gc({ deleteUntagged: true, minAgeMs: 3_600_000 });
      t.equal(r.blobsDeleted + r.manifestsDeleted + r.layerLinksDeleted, 0);
      t.same(await listBlobs(store.driver, 8), before);
    }),
  );

  t.test('a manifest of a type berth does not parse (schema 1) keeps every blob it mentions', (t) =>
    withFixture(t, async ({ store, gc }) => {
      const layer = blob('schema1-layer');
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'old/app', tag: 'v0', fsLayers: [{ blobSum: layer.digest }], signatures: [] }));
      const d = blob(manifest).digest;
      const { driver } = store;
      const link = (p: string, target: string) => driver.putContent(p, Buffer.from(target));
      await driver.putContent(paths.blobData(parseDigest(layer.digest)), layer.bytes);
      await driver.putContent(paths.blobData(parseDigest(d)), manifest);
      await link(paths.layerLink('old/app', parseDigest(layer.digest)), layer.digest);
      await link(paths.revisionLink('old/app', parseDigest(d)), d);
      await link(paths.tagCurrentLink('old/app', 'v0'), d);
      await sleep(1100);
      const r = await gc({ deleteUntagged: true });
      t.notOk(r.removed.blobs.includes(layer.digest), 'the layer stays');
      t.notOk(r.removed.layerLinks.includes(`old/app@${layer.digest}`), 'and its link');
      t.same((await driver.getContent(paths.blobData(parseDigest(layer.digest)))).toString(), 'schema1-layer');
    }),
  );

  t.test('retention: keep the latest tag, keep tags by pattern, drop untagged', (t) =>
    withFixture(t, async ({ store, fixture, gc }) => {
      const policy = { repository: 'a/*', keeplatest: 1, untaggedage: 0 };
      const dry = await gc({ retention: [policy], dryRun: true });
      t.same(dry.removed.tags, ['a/app:v1'], 'dry run: v1 is older than multi');
      const kept = await gc({ retention: [{ repository: 'a/*', keeptags: 'v\\d+', untaggedage: 0 }], dryRun: true });
      t.same(kept.removed.tags, ['a/app:multi'], 'pattern keeps v1, drops the rest');
      const r = await gc({ retention: [policy] });
      t.same(r.removed.tags, ['a/app:v1']);
      const index = fixture.kept.find((i) => i.ref === 'multi')!;
      t.ok(await readable(store, index), 'the index stays');
      for (const c of index.children!) t.ok(await readable(store, c), 'and its children');
      t.notOk(await readable(store, fixture.kept[0]), 'the image only v1 reached is gone');
      t.ok(await readable(store, fixture.kept.find((i) => i.repo === 'b/app')!), 'other repositories are untouched');
      t.ok(await readable(store, fixture.untagged.find((i) => i.repo === 'c/app')!), 'untagged manifests elsewhere stay without a policy');
    }),
  );
}
