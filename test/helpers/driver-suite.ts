// Conformance suite for StorageDriver implementations: every driver must pass
// it unchanged. A test file calls driverSuite() with a factory that returns
// fresh driver instances on one backend (a second instance stands in for
// another process or replica).
import { createHash, randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import t, { type Test } from 'tap';
import { readAll } from './oci-client';
import {
  InvalidOffsetError,
  PathNotFoundError,
  type FileInfo,
  type StorageDriver,
} from '../../storage/driver';

export interface SuiteOptions {
  /** A new driver instance on the same backend and root. */
  open(): Promise<StorageDriver>;
  /** Called once at the end (stop servers, remove dirs). */
  teardown?(): Promise<void>;
  /** Bytes of the streaming test (default 48 MiB). */
  largeSize?: number;
  /** Bytes of the file moved (pick one above a driver's multipart-copy threshold). */
  moveSize?: number;
  /** Files in the tree deleted at once (default 1,005: more than one S3 DeleteObjects batch). */
  treeFiles?: number;
  /** A read racing an overwrite may find no object for a moment (Swift with one
   * replica unlinks the old object file between a reader's listing and open;
   * AWS S3 and the filesystem's rename never do). Torn reads stay forbidden. */
  overwriteMayVanish?: boolean;
}

const MiB = 1024 * 1024;
// A full collection on demand, without starting node with --expose-gc.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function rejectsNotFound(t: Test, p: Promise<unknown>, what: string) {
  await t.rejects(p, PathNotFoundError as any, what);
}

/** Run async jobs with at most n in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>) {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  }));
}

export function driverSuite(name: string, opts: SuiteOptions): void {
  let d: StorageDriver;
  let other: StorageDriver;
  let seq = 0;
  // Each test works in its own directory so that they cannot disturb each other.
  const dir = () => `/suite-${process.pid}-${Date.now().toString(36)}-${seq++}`;

  t.before(async () => {
    d = await opts.open();
    other = await opts.open();
  });
  t.teardown(async () => {
    await d?.close();
    await other?.close();
    await opts.teardown?.();
  });

  t.test(`${name}: putContent/getContent`, async (t) => {
    const p = `${dir()}/a/b/file`;
    await rejectsNotFound(t, d.getContent(p), 'missing file');
    await d.putContent(p, Buffer.from('first'));
    t.equal((await d.getContent(p)).toString(), 'first');
    await d.putContent(p, Buffer.from('second, longer'));
    t.equal((await other.getContent(p)).toString(), 'second, longer', 'replaced, seen by another instance');
    await d.putContent(p, Buffer.alloc(0));
    t.equal((await d.getContent(p)).length, 0, 'empty content');
  });

  t.test(`${name}: putContent replaces atomically`, async (t) => {
    const p = `${dir()}/atomic`;
    const a = randomBytes(256 * 1024);
    const b = randomBytes(256 * 1024);
    await d.putContent(p, a);
    const seen = new Set<string>();
    let stop = false;
    const read = async () => {
      try {
        const got = sha(await other.getContent(p));
        return got === sha(a) ? 'a' : got === sha(b) ? 'b' : 'torn';
      } catch (err) {
        if (err instanceof PathNotFoundError) return 'vanished';
        throw err;
      }
    };
    const readers = Array.from({ length: 3 }, async () => {
      while (!stop) seen.add(await read());
    });
    try {
      for (let i = 0; i < 10; i++) await d.putContent(p, i % 2 ? a : b);
    } finally {
      stop = true;
      await Promise.allSettled(readers);
    }
    await Promise.all(readers);
    const whole = `readers saw only whole versions (${[...seen].join(',')})`;
    t.notOk(seen.has('torn'), whole);
    if (!opts.overwriteMayVanish) t.notOk(seen.has('vanished'), 'the object never vanished while replaced');
  });

  t.test(`${name}: reader offsets and ranges`, async (t) => {
    const p = `${dir()}/r`;
    const data = randomBytes(100_000);
    await d.putContent(p, data);
    t.same(await readAll(await d.reader(p)), data, 'whole file');
    t.same(await readAll(await d.reader(p, 1000)), data.subarray(1000), 'from an offset');
    t.same(await readAll(await d.reader(p, 1000, 2000)), data.subarray(1000, 2000), 'a range');
    t.same(await readAll(await d.reader(p, 99_999, 100_000)), data.subarray(99_999), 'last byte');
    t.equal((await readAll(await d.reader(p, data.length))).length, 0, 'at the end: empty');
    await t.rejects(d.reader(p, data.length + 1), InvalidOffsetError as any, 'past the end');
    await t.rejects(d.reader(p, -1), InvalidOffsetError as any, 'negative');
    await rejectsNotFound(t, d.reader(`${p}-missing`), 'missing file');
    const empty = `${dir()}/empty`;
    await d.putContent(empty, Buffer.alloc(0));
    t.equal((await readAll(await d.reader(empty, 0))).length, 0, 'empty file');
  });

  // Long ranges are where a driver may split a read (the S3 one fetches parts ahead).
  t.test(`${name}: reader of long ranges`, async (t) => {
    const p = `${dir()}/long`;
    const data = randomBytes(19 * MiB + 12345);
    await d.putContent(p, data);
    for (const [start, end] of [
      [0, data.length],
      [1000, data.length - 1000],
      [8 * MiB - 1, data.length],
      [3, 16 * MiB + 3],
    ]) {
      t.equal(sha(await readAll(await other.reader(p, start, end))), sha(data.subarray(start, end)), `bytes ${start}..${end}`);
    }
    // A reader dropped part-way lets go of what it holds; reads after it are whole.
    const cut = await other.reader(p, 0, data.length);
    for await (const _ of cut) break;
    t.equal(sha(await readAll(await other.reader(p, 5, data.length))), sha(data.subarray(5)), 'a read after one cut short');
  });

  t.test(`${name}: writer append across close() and another instance`, async (t) => {
    const p = `${dir()}/upload/data`;
    // Chunk sizes straddle typical part sizes (5 and 10 MiB).
    const chunks = [3 * MiB + 17, 4 * MiB, 1, 7 * MiB + 5, 64 * 1024, 2 * MiB].map((n) => randomBytes(n));
    const whole = Buffer.concat(chunks);
    let w = await d.writer(p, false);
    t.equal(w.size, 0);
    await w.write(chunks[0]);
    t.equal(w.size, chunks[0].length, 'size counts written bytes');
    await w.close();
    let expected = chunks[0].length;
    for (let i = 1; i < chunks.length; i++) {
      // Alternate instances: each append is like a request landing on another replica.
      const inst = i % 2 ? other : d;
      w = await inst.writer(p, true);
      t.equal(w.size, expected, `append #${i} resumes at ${expected}`);
      await w.write(chunks[i]);
      expected += chunks[i].length;
      if (i < chunks.length - 1) await w.close();
    }
    t.equal(w.size, whole.length);
    await w.commit();
    const st = await d.stat(p);
    t.equal(st.size, whole.length, 'stat size after commit');
    t.equal(sha(await d.getContent(p)), sha(whole), 'content intact');
    t.same(await readAll(await d.reader(p, 5 * MiB - 3, 5 * MiB + 3)), whole.subarray(5 * MiB - 3, 5 * MiB + 3), 'range across a part boundary');
  });

  t.test(`${name}: writer size and stat of an unfinished file`, async (t) => {
    const p = `${dir()}/partial`;
    const w = await d.writer(p, false);
    await w.write(randomBytes(6 * MiB));
    await w.write(randomBytes(1000));
    await w.close();
    t.equal((await other.stat(p)).size, 6 * MiB + 1000, 'stat sees every closed byte');
    const again = await other.writer(p, true);
    t.equal(again.size, 6 * MiB + 1000, 'a new writer resumes at the end');
    await again.cancel();
  });

  t.test(`${name}: writer without append truncates`, async (t) => {
    const p = `${dir()}/trunc`;
    await d.putContent(p, Buffer.from('old content'));
    const w = await d.writer(p, false);
    t.equal(w.size, 0);
    await w.write(Buffer.from('new'));
    await w.commit();
    t.equal((await d.getContent(p)).toString(), 'new');
    const w2 = await other.writer(p, true);
    t.equal(w2.size, 3, 'append to a finished file continues after it');
    await w2.write(Buffer.from('er'));
    await w2.commit();
    t.equal((await d.getContent(p)).toString(), 'newer');
  });

  t.test(`${name}: empty file, cancel`, async (t) => {
    const base = dir();
    const w = await d.writer(`${base}/empty`, false);
    await w.commit();
    t.equal((await d.stat(`${base}/empty`)).size, 0, 'committed empty file');
    const c = await d.writer(`${base}/cancelled`, false);
    await c.write(randomBytes(6 * MiB));
    await c.close();
    const c2 = await other.writer(`${base}/cancelled`, true);
    await c2.write(Buffer.from('x'));
    await c2.cancel();
    await rejectsNotFound(t, d.stat(`${base}/cancelled`), 'cancelled file is gone');
  });

  t.test(`${name}: stat`, async (t) => {
    const base = dir();
    const before = Date.now();
    await d.putContent(`${base}/x/file`, Buffer.from('12345'));
    const f = await d.stat(`${base}/x/file`);
    t.equal(f.size, 5);
    t.equal(f.isDir, false);
    t.equal(f.path, `${base}/x/file`);
    t.ok(Math.abs(f.modTime.getTime() - before) < 120_000, 'modTime is about now');
    const dd = await d.stat(`${base}/x`);
    t.equal(dd.isDir, true, 'directory');
    await rejectsNotFound(t, d.stat(`${base}/nope`), 'missing');
    await rejectsNotFound(t, d.stat(`${base}/x/fil`), 'a prefix of a name is not a path');
  });

  t.test(`${name}: list and listPage`, async (t) => {
    const base = dir();
    // Names that sort differently as keys ("foo/" after "foo-bar") and as names.
    const files = ['foo/1', 'foo-bar/1', 'foo.x', 'fo', 'foo0', 'a', 'b/c/d', 'zz', '_x/1'];
    for (const f of files) await d.putContent(`${base}/${f}`, Buffer.from(f));
    const expected = ['_x', 'a', 'b', 'fo', 'foo', 'foo-bar', 'foo.x', 'foo0', 'zz'].sort();
    t.same(await d.list(base), expected, 'sorted direct children, files and directories');
    t.same(await other.list(`${base}/b`), ['c']);
    await rejectsNotFound(t, d.list(`${base}/missing`), 'missing directory');
    for (const limit of [1, 2, 3, 100]) {
      const got: string[] = [];
      let after: string | undefined;
      for (let pages = 0; pages < 20; pages++) {
        const page = await d.listPage(base, after, limit);
        t.ok(page.names.length <= limit, 'page within limit');
        got.push(...page.names);
        if (!page.next) break;
        after = page.next;
      }
      t.same(got, expected, `paging by ${limit} yields every name once, in order`);
    }
    t.same((await d.listPage(base, 'foo', 2)).names, ['foo-bar', 'foo.x'], 'after a name that is not given back');
    t.same((await d.listPage(base, 'fop', 10)).names, ['zz'], 'after a name that does not exist');
    t.same((await d.listPage(base, 'zz', 10)), { names: [] }, 'after the last name: empty, no next');
    t.equal((await d.listPage(base, 'foo0', 1)).next, undefined, 'no next on the last page');
  });

  t.test(`${name}: move`, async (t) => {
    const base = dir();
    await d.putContent(`${base}/src`, Buffer.from('payload'));
    await d.move(`${base}/src`, `${base}/deep/dst`);
    t.equal((await d.getContent(`${base}/deep/dst`)).toString(), 'payload');
    await rejectsNotFound(t, d.stat(`${base}/src`), 'source gone');
    await d.putContent(`${base}/src2`, Buffer.from('replacement'));
    await d.move(`${base}/src2`, `${base}/deep/dst`);
    t.equal((await other.getContent(`${base}/deep/dst`)).toString(), 'replacement', 'destination replaced');
    await rejectsNotFound(t, d.move(`${base}/missing`, `${base}/x`), 'missing source');
    const big = randomBytes(opts.moveSize ?? 12 * MiB);
    const w = await d.writer(`${base}/big`, false);
    for (let o = 0; o < big.length; o += MiB) await w.write(big.subarray(o, o + MiB));
    await w.commit();
    await d.move(`${base}/big`, `${base}/moved/big`);
    t.equal(sha(await d.getContent(`${base}/moved/big`)), sha(big), `large move (${big.length} bytes) intact`);
  });

  t.test(`${name}: delete`, async (t) => {
    const base = dir();
    await d.putContent(`${base}/keep/file`, Buffer.from('k'));
    await d.putContent(`${base}/foo`, Buffer.from('f'));
    await d.putContent(`${base}/foo-bar`, Buffer.from('fb'));
    await d.putContent(`${base}/foobar/x`, Buffer.from('fbx'));
    await d.delete(`${base}/foo`);
    await rejectsNotFound(t, d.stat(`${base}/foo`), 'file deleted');
    t.same(await d.list(base), ['foo-bar', 'foobar', 'keep'], 'names sharing the prefix survive');
    await rejectsNotFound(t, d.delete(`${base}/foo`), 'deleting again');
    const n = opts.treeFiles ?? 1005;
    const names = Array.from({ length: n }, (_, i) => `${base}/tree/${i % 7}/f${i}`);
    await pool(names, 16, (p) => d.putContent(p, Buffer.from(p)));
    const w = await d.writer(`${base}/tree/unfinished`, false);
    await w.write(randomBytes(6 * MiB));
    await w.close();
    await other.delete(`${base}/tree`);
    await rejectsNotFound(t, d.stat(`${base}/tree`), `tree of ${n + 1} files deleted`);
    await rejectsNotFound(t, d.list(`${base}/tree`), 'nothing listed');
    await rejectsNotFound(t, d.stat(`${base}/tree/unfinished`), 'an unfinished file in the tree is gone too');
    t.same(await d.list(base), ['foo-bar', 'foobar', 'keep']);
    await rejectsNotFound(t, d.delete(`${base}/never`), 'missing path');
  });

  t.test(`${name}: walk`, async (t) => {
    const base = dir();
    const files = ['a/1', 'a/2', 'a/b/3', 'a-c/4', 'skipme/x/5', 'skipme/6', 'top'];
    for (const f of files) await d.putContent(`${base}/${f}`, Buffer.from(f));
    const seen: FileInfo[] = [];
    await d.walk(base, (info) => {
      seen.push(info);
      if (info.path === `${base}/skipme`) return 'skip';
    });
    const paths = seen.map((i) => i.path.slice(base.length + 1));
    t.same([...paths].sort(), ['a', 'a-c', 'a-c/4', 'a/1', 'a/2', 'a/b', 'a/b/3', 'skipme', 'top'], 'every file and directory once, none under a skipped one');
    t.equal(new Set(paths).size, paths.length, 'no duplicates');
    for (const p of paths) {
      const parent = p.split('/').slice(0, -1).join('/');
      if (parent) t.ok(paths.indexOf(parent) < paths.indexOf(p), `${parent} before ${p}`);
    }
    const file = seen.find((i) => i.path === `${base}/a/b/3`)!;
    t.same([file.isDir, file.size], [false, 5], 'file info');
    t.equal(seen.find((i) => i.path === `${base}/a/b`)!.isDir, true, 'directory info');
    await rejectsNotFound(t, d.walk(`${base}/missing`, () => undefined), 'missing path');
  });

  t.test(`${name}: concurrent writers to different paths`, async (t) => {
    const base = dir();
    const datas = Array.from({ length: 4 }, () => randomBytes(6 * MiB + 123));
    const writers = await Promise.all(datas.map((_, i) => d.writer(`${base}/w${i}`, false)));
    // Interleave writes chunk by chunk.
    for (let o = 0; o < datas[0].length; o += 512 * 1024) {
      await Promise.all(writers.map((w, i) => w.write(datas[i].subarray(o, o + 512 * 1024))));
    }
    await Promise.all(writers.map((w) => w.commit()));
    for (let i = 0; i < datas.length; i++) t.equal(sha(await other.getContent(`${base}/w${i}`)), sha(datas[i]), `writer ${i} intact`);
  });

  t.test(`${name}: large streaming write and read`, async (t) => {
    const p = `${dir()}/large`;
    const size = opts.largeSize ?? 48 * MiB;
    const base = randomBytes(MiB);
    const hashIn = createHash('sha256');
    // RSS is sampled after a full collection: the test's own chunks are garbage
    // the moment they are written, and how soon V8 frees them varies with load
    // and Node version. What must not grow is what a driver holds on to.
    const sample = (): number => { gc(); return process.memoryUsage().rss; };
    const rss0 = sample();
    let peak = rss0;
    const t0 = Date.now();
    const w = await d.writer(p, false);
    for (let o = 0; o < size; o += MiB) {
      // Vary the data so a driver that repeats a chunk would be caught (a new
      // buffer each time: a writer may hold on to what it was given).
      const chunk = Buffer.from(base);
      chunk.writeUInt32BE(o / MiB, 0);
      hashIn.update(chunk);
      await w.write(chunk);
      if (o % (8 * MiB) === 0) peak = Math.max(peak, sample());
    }
    await w.commit();
    peak = Math.max(peak, sample());
    const t1 = Date.now();
    const hashOut = createHash('sha256');
    let n = 0;
    for await (const c of await other.reader(p)) {
      hashOut.update(c as Buffer);
      if (Math.floor(n / (8 * MiB)) !== Math.floor((n + (c as Buffer).length) / (8 * MiB))) peak = Math.max(peak, sample());
      n += (c as Buffer).length;
    }
    const t2 = Date.now();
    t.equal(n, size, 'read every byte');
    t.equal(hashOut.digest('hex'), hashIn.digest('hex'), 'content intact');
    const mb = size / MiB;
    t.comment(`${name}: write ${(mb / ((t1 - t0) / 1000)).toFixed(1)} MiB/s, read ${(mb / ((t2 - t1) / 1000)).toFixed(1)} MiB/s, RSS growth ${((peak - rss0) / MiB).toFixed(1)} MiB for ${mb} MiB`);
    t.ok(peak - rss0 < size * 0.75, 'memory does not grow with the file');
  });
}
