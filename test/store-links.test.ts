// Tag and link lookups: concurrent misses of one link share one read, and a
// write made while such a read is in flight is not overwritten by it.
import t from 'tap';
import type { StorageDriver } from '../storage/driver';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { ContentStore } from '../storage/store';
import { tempDir } from './helpers/berth';
import { putImage } from './helpers/gc-fixture';
import { blob } from './helpers/registry-client';

/** A driver whose tag-link reads are counted and can be made to answer late. */
function watched(inner: StorageDriver) {
  const stats = { tagReads: 0 };
  let gate: Promise<void> | undefined;
  const driver = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'getContent') return Reflect.get(target, prop, receiver);
      return async (path: string) => {
        if (!path.includes('/_manifests/tags/')) return target.getContent(path);
        stats.tagReads++;
        const held = gate;
        const content = await target.getContent(path);
        await held; // answers late with what it read early
        return content;
      };
    },
  });
  return { driver, stats, hold: (p: Promise<void>) => (gate = p) };
}

t.test('link lookups', async (t) => {
  const root = tempDir('berth-links-');
  const w = watched(new FilesystemDriver({ rootdirectory: root }));
  const store = new ContentStore(w.driver, { linkCacheTtlMs: 50 });
  const v1 = await putImage(store, 'team/app', 'v1', [blob('{"n":1}'), blob('layer one')]);
  const v2 = await putImage(store, 'team/app', undefined, [blob('{"n":2}'), blob('layer two')]);

  await new Promise((r) => setTimeout(r, 80)); // the tag's cache entry expires
  w.stats.tagReads = 0;
  const got = await Promise.all(Array.from({ length: 50 }, () => store.getManifest('team/app', 'v1')));
  t.ok(got.every((m) => m.digest === v1.digest), 'every lookup resolves the tag');
  t.equal(w.stats.tagReads, 1, '50 concurrent lookups of an expired tag read it once');

  // A lookup stalls on a read of v1; meanwhile the tag moves to v2 in this process.
  await new Promise((r) => setTimeout(r, 80));
  let release!: () => void;
  w.hold(new Promise<void>((r) => (release = r)));
  const stale = store.getManifest('team/app', 'v1');
  await new Promise((r) => setTimeout(r, 20));
  w.hold(Promise.resolve());
  await store.putManifest('team/app', 'v1', v2.bytes, 'application/vnd.oci.image.manifest.v1+json');
  release();
  await stale; // resolves to whichever it read; what matters is what is cached afterwards
  t.equal((await store.getManifest('team/app', 'v1')).digest, v2.digest, 'the write wins over the read that began before it');
});
