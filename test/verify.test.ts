// berth verify: a flipped byte and a deleted blob are found and attributed to
// their repository and image; --repair removes what is provably broken, links
// again what is back, and lists the images only a push can repair.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseDigest } from '../storage/digest';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { paths } from '../storage/paths';
import type { Problem, VerifyReport } from '../storage/verify';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { buildFixture } from './helpers/gc-fixture';

/** Age every file so the repair grace period (for commits in progress) does not apply. */
function ageTree(dir: string, seconds: number): void {
  const when = new Date(Date.now() - seconds * 1000);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) ageTree(p, seconds);
    fs.utimesSync(p, when, when);
  }
}

t.test('verify finds a flipped byte and a deleted blob, by repository and image', async (t) => {
  const root = tempDir('berth-verify-');
  const driver = new FilesystemDriver({ rootdirectory: root });
  const { fixture } = await buildFixture(driver);

  const clean = await runCli(['verify'], root);
  t.equal(clean.code, 0, `a healthy store verifies: ${clean.stdout}${clean.stderr}`);
  t.match(clean.stdout, /0 problems/);

  const cur = fixture.kept[0]; // a/app:v1
  const flipped = cur.blobs[3]; // its own layer
  const other = fixture.kept.find((i) => i.repo === 'b/app')!;
  const deleted = other.blobs[3]; // b/app:latest's own layer
  const file = path.join(root, paths.blobData(parseDigest(flipped.digest)));
  const bytes = fs.readFileSync(file);
  bytes[100] ^= 0x01;
  fs.writeFileSync(file, bytes);
  fs.rmSync(path.dirname(path.join(root, paths.blobData(parseDigest(deleted.digest)))), { recursive: true });
  ageTree(root, 600);

  const bad = await runCli(['verify', '--json'], root);
  t.equal(bad.code, 1, 'non-zero exit');
  const report = JSON.parse(bad.stdout) as VerifyReport;
  const has = (p: Partial<Problem>) => report.problems.some((x) => Object.entries(p).every(([k, v]) => x[k as keyof Problem] === v));
  t.ok(has({ kind: 'corrupt-blob', digest: flipped.digest, repository: undefined }), 'the corrupt blob itself');
  t.ok(has({ kind: 'corrupt-blob', digest: flipped.digest, repository: 'a/app', image: 'a/app:v1' }), 'attributed to a/app:v1');
  t.ok(has({ kind: 'missing-blob', digest: deleted.digest, repository: 'b/app', image: 'b/app:latest' }), 'the deleted blob, attributed to b/app:latest');
  t.ok(has({ kind: 'dangling-link', digest: deleted.digest, repository: 'b/app' }), 'the link left behind');
  t.equal(report.repaired, 0, 'nothing changed without --repair');

  const text = await runCli(['verify'], root);
  t.match(text.stdout, /a\/app:\n.*corrupt-blob\s+a\/app:v1 sha256:/);
  t.match(text.stdout, /; 4 problems; 2 images to push again \(/);

  const repair = await runCli(['verify', '--repair', '--json'], root);
  const repaired = JSON.parse(repair.stdout) as VerifyReport;
  t.equal(repair.code, 1, 'still non-zero: the images remain broken');
  t.ok(repaired.problems.some((p) => p.kind === 'corrupt-blob' && p.digest === flipped.digest && p.repaired), 'corrupt blob removed');
  t.ok(repaired.problems.some((p) => p.kind === 'dangling-link' && p.digest === deleted.digest && p.repaired), 'dangling link removed');
  t.notOk(fs.existsSync(file), 'the corrupt file is gone');
  t.notOk(fs.existsSync(path.join(root, paths.layerLink('b/app', parseDigest(deleted.digest)))), 'the dangling link is gone');

  const after = JSON.parse((await runCli(['verify', '--json'], root)).stdout) as VerifyReport;
  t.notOk(after.problems.some((p) => p.kind === 'corrupt-blob' && !p.repository), 'no corrupt blob remains');
  t.ok(after.problems.every((p) => p.kind === 'missing-blob'), `what remains are the images missing a blob: ${after.problems.map((p) => p.kind)}`);
});

t.test('verify --repair re-links a blob that is back, and says plainly what needs a push', async (t) => {
  const root = tempDir('berth-verify-');
  const { fixture } = await buildFixture(new FilesystemDriver({ rootdirectory: root }));
  const other = fixture.kept.find((i) => i.repo === 'b/app')!; // b/app:latest
  const lost = other.blobs[3]; // its own layer
  const file = path.join(root, paths.blobData(parseDigest(lost.digest)));
  fs.rmSync(path.dirname(file), { recursive: true });
  ageTree(root, 600);

  const repair = await runCli(['verify', '--repair'], root);
  t.equal(repair.code, 1, 'the image stays broken');
  t.match(repair.stdout, /dangling-link\s+sha256:\S+: layer link to a blob the store does not hold \[removed\]/);
  t.match(repair.stdout, new RegExp(`images to push again[^\\n]*:\\n  b/app:latest: ${lost.digest} missing\\n`), 'names the image to push and what it misses');
  t.match(repair.stdout, /; 1 image to push again \(/);

  // The blob comes back (restored from a backup, or pushed to another repository).
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lost.bytes);
  ageTree(root, 600);
  const unlinked = JSON.parse((await runCli(['verify', '--json'], root)).stdout) as VerifyReport;
  t.match(unlinked.problems, [{ kind: 'unlinked-blob', repository: 'b/app', image: 'b/app:latest', digest: lost.digest }], 'b/app no longer links it');
  t.same(unlinked.repush, [], 'nothing needs a push: the content is all there');

  const relink = await runCli(['verify', '--repair'], root);
  t.equal(relink.code, 0, `repaired: ${relink.stdout}`);
  t.match(relink.stdout, /unlinked-blob\s+b\/app:latest sha256:\S+: the repository does not link this layer or config \[relinked\]/);
  t.ok(fs.existsSync(path.join(root, paths.layerLink('b/app', parseDigest(lost.digest)))), 'the layer link is back');
  const after = await runCli(['verify'], root);
  t.equal(after.code, 0, 'and the store verifies clean');
  t.match(after.stdout, /; 0 problems \(/);
});
