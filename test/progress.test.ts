// Progress output of long runs (server/progress.ts): off a terminal, a line
// per phase and then one per interval; on a terminal, a redrawn bar that is
// cleared at the end. Then the commands themselves with stdout and stderr
// piped: `berth gc` prints progress lines, per-phase timings and a one-line
// summary; verify and du end with theirs.
import { Writable } from 'node:stream';
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { createProgress } from '../server/progress';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { buildFixture } from './helpers/gc-fixture';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LINE = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) ([a-z ]+): (\d+)\/(\d+) \((\d+)%\)$/;

/** A stream that records what is written, a terminal or not. */
function capture(isTTY: boolean) {
  const chunks: string[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { out: Object.assign(out, { isTTY }) as unknown as NodeJS.WriteStream, chunks };
}

t.test('off a terminal: a line when a phase starts, then one per interval', async (t) => {
  const { out, chunks } = capture(false);
  const interval = 300;
  const p = createProgress(out, interval);
  const start = Date.now();
  for (let i = 1; Date.now() - start < 1000; i++) {
    p.update('list blobs', i, 10_000);
    await sleep(10);
  }
  p.update('mark', 1, 3);
  p.update('mark', 2, 3);
  p.done();
  const lines = chunks.join('').split('\n');
  t.equal(lines.pop(), '', 'whole lines only');
  t.ok(lines.every((l) => LINE.test(l)), 'each a timestamped "phase: done/total (pct%)" line, no bar', { lines });
  const listing = lines.filter((l) => l.includes(' list blobs: '));
  t.ok(listing.length >= 3 && listing.length <= 4, `about one line per ${interval} ms over a second (${listing.length})`);
  t.match(listing[0], / list blobs: 1\/10000 \(0%\)$/, 'the first update is printed at once');
  const times = listing.map((l) => Date.parse(LINE.exec(l)![1]));
  for (let i = 1; i < times.length; i++) t.ok(times[i] - times[i - 1] >= interval, `line ${i + 1} came an interval after the one before`);
  t.same(lines.filter((l) => l.includes(' mark: ')).length, 1, 'a new phase prints at once, then waits for the interval again');
});

t.test('on a terminal: one bar redrawn in place and cleared at the end', async (t) => {
  const { out, chunks } = capture(true);
  const p = createProgress(out, 5000);
  p.update('verify blobs', 0, 4);
  p.update('verify blobs', 1, 4); // within 100 ms of the last draw: skipped
  await sleep(120);
  p.update('verify blobs', 2, 4);
  p.update('verify blobs', 4, 4); // the last step is always drawn
  p.done();
  t.equal(chunks.length, 4, 'three draws and a clear');
  t.ok(chunks.slice(0, 3).every((c) => c.startsWith('\r\x1b[K') && !c.includes('\n')), 'each draw returns to the start of the line');
  t.match(chunks[0], /verify blobs +\[-{30}\] +0% 0\/4$/);
  t.match(chunks[1], /\[#{15}-{15}\] +50% 2\/4$/);
  t.match(chunks[2], /\[#{30}\] 100% 4\/4$/);
  t.equal(chunks[3], '\r\x1b[K', 'done() clears the bar');
});

t.test('berth gc, verify and du off a terminal: progress lines, phase timings, a one-line summary', async (t) => {
  const root = tempDir('berth-progress-');
  await buildFixture(new FilesystemDriver({ rootdirectory: root }));

  const gc = await runCli(['gc', '--min-age', '0s', '--delete-untagged'], root);
  t.equal(gc.code, 0, 'gc', { stderr: gc.stderr });
  t.notMatch(gc.stderr + gc.stdout, /[\r\x1b]/, 'no terminal control characters');
  const progress = gc.stderr.trimEnd().split('\n');
  t.ok(progress.every((l) => LINE.test(l)), 'stderr holds only progress lines', { stderr: gc.stderr });
  t.same([...new Set(progress.map((l) => LINE.exec(l)![2]))], ['list blobs', 'mark', 'sweep repositories', 'sweep blobs'], 'one or more per phase, in order');

  const report = gc.stdout.trimEnd().split('\n');
  const summary = report.pop()!;
  t.match(summary, /^gc: freed [\d.]+ (B|KiB) in \d+ blobs; 3 manifests, 0 tags, \d+ layer links removed; kept \d+ manifests, \d+ blobs in 3 repositories; 0 stale uploads purged \(\d+\.\ds\)$/, 'the last line is the summary');
  const phases = report.map((l) => /^ {2}(.{20}) (\d+\.\d\d)s$/.exec(l));
  t.ok(phases.every(Boolean), 'every line before it is a phase timing', { stdout: gc.stdout });
  t.same(
    phases.map((m) => m![1].trim()),
    ['uploads', 'list blobs', 'list repositories', 'mark', 'sweep repositories', 'sweep blobs'],
    'a timing for each phase (upload purging is on by default)',
  );

  const verify = await runCli(['verify'], root);
  t.equal(verify.code, 0, 'verify', { stderr: verify.stderr });
  t.ok(verify.stderr.trimEnd().split('\n').every((l) => LINE.test(l)), 'verify: progress lines on stderr', { stderr: verify.stderr });
  t.match(verify.stdout, /^verify: \d+ blobs \([\d.]+ (B|KiB)\) re-hashed, \d+ manifests in 3 repositories; 0 problems \(\d+\.\ds\)\n$/, 'verify: a one-line summary');

  const du = await runCli(['du'], root);
  t.equal(du.code, 0, 'du', { stderr: du.stderr });
  t.ok(du.stderr.trimEnd().split('\n').every((l) => LINE.test(l)), 'du: progress lines on stderr', { stderr: du.stderr });
  t.match(du.stdout.trimEnd().split('\n').pop(), /^du: [\d.]+ (B|KiB) as clients see it, [\d.]+ (B|KiB) stored in \d+ blobs; dedup ratio \d+\.\d\d \(\d+\.\ds\)$/, 'du: ends with a one-line summary');
});
