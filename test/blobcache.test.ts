// The local-disk blob cache (storage/blobcache.ts): filled by a whole-blob
// read, kept only when every byte arrived, served from disk with its
// descriptor, evicted by size, adopted again after a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { BlobCache } from '../storage/blobcache';
import { localFile } from '../storage/driver';
import { tempDir } from './helpers/berth';
import { readAll as drain, sha256 as digestOf } from './helpers/oci-client';

const KiB = 1024;

/** A backend read: `data` in 64 KiB chunks, like a network stream. */
function source(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 64 * KiB) yield data.subarray(i, i + 64 * KiB);
    })(),
    { objectMode: false },
  );
}

/** Files under root, relative to it, sorted. */
function files(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(root, f)).isFile()).sort();
}

t.test('blob cache', async (t) => {
  const root = tempDir('berth-blobcache-');
  const cache = new BlobCache({ rootdirectory: root, maxsize: 4096 * KiB });
  t.same(await cache.open(), { entries: 0, bytes: 0 });

  const a = crypto.randomBytes(700 * KiB);
  const da = digestOf(a);
  t.equal(await cache.read(da, a.length, 0, a.length), undefined, 'a miss before any fill');
  t.ok((await drain(cache.fill(da, a.length, source(a)))).equals(a), 'a fill passes the bytes through');
  await cache.settled();
  const hit = await cache.read(da, a.length, 0, a.length);
  t.ok(hit && localFile(hit), 'then a hit, from a local file (sendfile-able)');
  t.ok((await drain(hit!)).equals(a), 'with the same bytes');
  const part = await cache.read(da, a.length, 1000, 5000);
  t.ok((await drain(part!)).equals(a.subarray(1000, 5000)), 'ranges of a cached blob');
  t.same(cache.stats, { hits: 2, misses: 1 });
  t.same(files(root), ['sha256/' + da.slice(7, 9) + '/' + da.slice(7)], 'one file, named by digest; no temporary left');

  // A backend stream that ends early is passed on as it is, and not kept.
  const b = crypto.randomBytes(300 * KiB);
  const db = digestOf(b);
  await drain(cache.fill(db, b.length + 10, source(b)));
  await cache.settled();
  t.equal(await cache.read(db, b.length + 10, 0, b.length + 10), undefined, 'a short read is not cached');

  // A client that leaves mid-blob: nothing kept, the backend read stops.
  const c = crypto.randomBytes(900 * KiB);
  const dc = digestOf(c);
  const backend = Readable.from(
    (async function* () {
      yield c.subarray(0, 64 * KiB);
      await new Promise(() => {}); // the rest never comes
    })(),
    { objectMode: false },
  );
  const stream = cache.fill(dc, c.length, backend);
  await new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.destroy();
  await cache.settled();
  t.ok(backend.destroyed, 'the backend read is stopped');
  t.equal(await cache.read(dc, c.length, 0, c.length), undefined, 'an abandoned fill is not cached');
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'and leaves no temporary file');

  // Larger than a quarter of maxsize: passed through, never cached.
  const big = crypto.randomBytes(1100 * KiB);
  const src = source(big);
  t.equal(cache.fill(digestOf(big), big.length, src), src, 'a blob over maxsize/4 is not copied');

  // Past maxsize the least recently used entries go, files and all.
  const more = Array.from({ length: 6 }, () => crypto.randomBytes(900 * KiB));
  for (const m of more) {
    await drain(cache.fill(digestOf(m), m.length, source(m)));
    await cache.settled();
  }
  t.ok(cache.size.bytes <= 4096 * KiB, `within maxsize (${cache.size.bytes} bytes in ${cache.size.entries} entries)`);
  t.equal(await cache.read(da, a.length, 0, a.length), undefined, 'the oldest entry was evicted');
  await new Promise((r) => setTimeout(r, 50)); // eviction removes files in the background
  t.notOk(files(root).includes('sha256/' + da.slice(7, 9) + '/' + da.slice(7)), 'with its file');
  const last = more[more.length - 1];
  t.ok(await cache.read(digestOf(last), last.length, 0, last.length).then((s) => s && drain(s)), 'the newest is kept');

  // A restart adopts the entries and drops an unfinished fill.
  fs.writeFileSync(path.join(root, 'tmp', 'leftover'), 'partial');
  const again = new BlobCache({ rootdirectory: root, maxsize: 4096 * KiB });
  t.same(await again.open(), cache.size, 'the same entries after a restart');
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'an unfinished fill from before is removed');
  const got = await again.read(digestOf(last), last.length, 0, last.length);
  t.ok(got && (await drain(got)).equals(last), 'and serves them');

  // A file that changed size on disk is a miss, and is dropped.
  const file = path.join(root, 'sha256', digestOf(last).slice(7, 9), digestOf(last).slice(7));
  fs.truncateSync(file, 100);
  t.equal(await again.read(digestOf(last), last.length, 0, last.length), undefined, 'a damaged entry is a miss');
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(fs.existsSync(file), 'and is removed');
});
