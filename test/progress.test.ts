// Progress output of long runs (server/progress.ts): off a terminal, a line
// when a phase starts, one per interval and its last figures when it ends,
// with units; on a terminal, a redrawn bar that is cleared at the end. Then
// the commands themselves with stdout and stderr piped: `berth gc` prints
// progress lines, per-phase timings and a one-line summary that says what
// --min-age held back; verify and du end with theirs.
import { Writable } from 'node:stream';
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { createProgress } from '../server/progress';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { buildFixture } from './helpers/gc-fixture';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// "<time> <phase>: <done>/<total> <unit> (<pct>%)[, done in <s>s]", or with byte figures "1.2 KiB/2.0 KiB (60%)".
const LINE = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) ([a-z ]+): (\d+(?:\.\d)?(?: [KMGT]?i?B)?)\/(\d+(?:\.\d)?(?: [KMGT]?i?B)?)(?: ([a-z ]+))? \((\d+)%\)(, done in \d+\.\ds)?$/;

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

t.test('off a terminal: a line when a phase starts, one per interval, and its last figures when it ends', async (t) => {
  const { out, chunks } = capture(false);
  const interval = 300;
  const p = createProgress(out, interval);
  const start = Date.now();
  let i = 1;
  for (; Date.now() - start < 1000; i++) {
    p.update('list blobs', i, 10_000, 'blob directories');
    await sleep(10);
  }
  p.update('list blobs', 10_000, 10_000, 'blob directories');
  p.update('mark', 1, 3, 'repositories');
  p.update('mark', 2, 3, 'repositories');
  p.update('hash', 1536, 4 << 20, 'bytes');
  p.update('hash', 4 << 20, 4 << 20, 'bytes');
  p.done();
  const lines = chunks.join('').split('\n');
  t.equal(lines.pop(), '', 'whole lines only');
  t.ok(lines.every((l) => LINE.test(l)), 'each a timestamped "phase: done/total unit (pct%)" line, no bar', { lines });
  const listing = lines.filter((l) => l.includes(' list blobs: '));
  t.ok(listing.length >= 4 && listing.length <= 5, `about one line per ${interval} ms over a second, and the last (${listing.length})`);
  t.match(listing[0], / list blobs: 1\/10000 blob directories \(0%\)$/, 'the first update is printed at once, with its unit');
  t.match(listing.at(-1), / list blobs: 10000\/10000 blob directories \(100%\), done in \d+\.\ds$/, 'the phase ends at 100%, with its time');
  const times = listing.slice(0, -1).map((l) => Date.parse(LINE.exec(l)![1]));
  for (let i = 1; i < times.length; i++) t.ok(times[i] - times[i - 1] >= interval, `line ${i + 1} came an interval after the one before`);
  t.same(
    lines.filter((l) => l.includes(' mark: ')).map((l) => / mark: (.*)$/.exec(l)![1].replace(/done in .*/, 'done')),
    ['1/3 repositories (33%)', '2/3 repositories (66%), done'],
    'a new phase prints at once; when it ends, where it got to',
  );
  t.same(
    lines.filter((l) => l.includes(' hash: ')).map((l) => / hash: (.*)$/.exec(l)![1].replace(/done in .*/, 'done')),
    ['1.5 KiB/4.0 MiB (0%)', '4.0 MiB/4.0 MiB (100%), done'],
    'bytes in bytes',
  );
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
  t.match(chunks[0], /verify blobs +\[-{30}\] 0\/4 items \(0%\)$/);
  t.match(chunks[1], /\[#{15}-{15}\] 2\/4 items \(50%\)$/);
  t.match(chunks[2], /\[#{30}\] 4\/4 items \(100%\)$/);
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
  for (const phase of ['list blobs', 'mark', 'sweep repositories', 'sweep blobs']) {
    t.match(progress.filter((l) => LINE.exec(l)![2] === phase).at(-1), /\(100%\), done in \d+\.\ds$/, `${phase} ends at 100%`);
  }

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
  const verifyLines = verify.stderr.trimEnd().split('\n');
  t.ok(verifyLines.every((l) => LINE.test(l)), 'verify: progress lines on stderr', { stderr: verify.stderr });
  t.match(verifyLines.filter((l) => / hash: /.test(l)).at(-1), / hash: ([\d.]+ KiB)\/\1 \(100%\), done in/, 'verify: hashing ends at 100%, in bytes');
  t.match(verify.stdout, /^verify: \d+ blobs \([\d.]+ (B|KiB)\) re-hashed, \d+ manifests in 3 repositories; 0 problems \(\d+\.\ds\)\n$/, 'verify: a one-line summary');

  const du = await runCli(['du'], root);
  t.equal(du.code, 0, 'du', { stderr: du.stderr });
  t.ok(du.stderr.trimEnd().split('\n').every((l) => LINE.test(l)), 'du: progress lines on stderr', { stderr: du.stderr });
  t.match(du.stdout.trimEnd().split('\n').pop(), /^du: [\d.]+ (B|KiB) as clients see it, [\d.]+ (B|KiB) stored in \d+ blobs; dedup ratio \d+\.\d\d \(\d+\.\ds\)$/, 'du: ends with a one-line summary');
});

t.test('berth gc says what --min-age held back', async (t) => {
  const root = tempDir('berth-progress-');
  const { fixture } = await buildFixture(new FilesystemDriver({ rootdirectory: root }));
  // A fresh store: everything is younger than the default min-age (1h), the stray link and orphan blob too.
  const gc = await runCli(['gc', '--delete-untagged'], root);
  t.equal(gc.code, 0, gc.stderr);
  const summary = gc.stdout.trimEnd().split('\n').pop()!;
  t.match(summary, /^gc: freed 0 B in 0 blobs; 0 manifests, 0 tags, 0 layer links removed; /, 'nothing removed');
  const bytes = fixture.orphan.bytes.length;
  t.match(summary, new RegExp(`; 3 manifests, 1 layer link, 1 blob \\(${bytes} B\\) younger than --min-age 1h kept \\(`), 'and why: what min-age held back');
  const json = JSON.parse((await runCli(['gc', '--delete-untagged', '--json', '--min-age', '30m'], root)).stdout);
  t.match(json, { minAgeMs: 1_800_000, young: { manifests: 3, layerLinks: 1, blobs: 1, blobBytes: bytes, tags: 0 } }, 'the JSON report has the figures');
});
