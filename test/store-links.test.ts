// Tag and link lookups: concurrent misses of one link share one read, a
// write made while such a read is in flight is not overwritten by it, and a
// link read while its delete runs is not served once the delete is done.
import t from 'tap';
import type { StorageDriver } from '../storage/driver';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { ContentStore } from '../storage/store';
import { tempDir } from './helpers/berth';
import { putImage } from './helpers/gc-fixture';
import { blob } from './helpers/registry-client';

/** A driver whose tag-link reads are counted and can be made to answer late, and whose deletes can be held before they remove anything. */
function watched(inner: StorageDriver) {
  const stats = { tagReads: 0 };
  let gate: Promise<void> | undefined;
  let deleteGate: { match: string; started: () => void; held: Promise<void> } | undefined;
  const driver = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'delete') {
        return async (path: string) => {
          const g = deleteGate;
          if (g && path.includes(g.match)) {
            g.started();
            await g.held; // as an S3 delete, listing the tree before removing it
          }
          return target.delete(path);
        };
      }
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
  /** Hold deletes of paths containing `match`; resolves once one has begun, with the function that lets it go on. */
  const holdDeletes = (match: string) =>
    new Promise<() => void>((begun) => {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      deleteGate = { match, held, started: () => begun(release) };
    });
  return { driver, stats, hold: (p: Promise<void>) => (gate = p), holdDeletes };
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

t.test('a link read while its delete runs is not served after the delete', async (t) => {
  const root = tempDir('berth-links-');
  const w = watched(new FilesystemDriver({ rootdirectory: root }));
  // Entries live long here: only forgetting them can make the delete visible.
  const store = new ContentStore(w.driver, { linkCacheTtlMs: 60_000, deleteEnabled: true });
  const img = await putImage(store, 'team/app', 'v1', [blob('{"n":3}'), blob('layer three')]);
  await putImage(store, 'team/app', 'v2', [blob('{"n":4}'), blob('layer four')]);

  // While the tag's delete runs, the index summarises the repository (it reads every tag).
  const tagHeld = w.holdDeletes('/_manifests/tags/v1');
  const deleting = store.deleteManifest('team/app', img.digest);
  const releaseTag = await tagHeld;
  t.equal((await store.allTags('team/app')).get('v1'), img.digest, 'a read during the delete still finds the tag');
  // And a pull by digest reads the revision link while that delete runs.
  const revisionHeld = w.holdDeletes('/_manifests/revisions/');
  releaseTag();
  const releaseRevision = await revisionHeld;
  t.equal((await store.getManifest('team/app', img.digest)).digest, img.digest, 'a pull during the delete still finds the manifest');
  releaseRevision();
  await deleting;

  await t.rejects(store.getManifest('team/app', 'v1'), { code: 'MANIFEST_UNKNOWN' }, 'the tag is gone once the delete is done');
  await t.rejects(store.getManifest('team/app', img.digest), { code: 'MANIFEST_UNKNOWN' }, 'so is the manifest');
  t.same([...(await store.allTags('team/app')).keys()], ['v2'], 'and the tag list has only the other tag');
});
