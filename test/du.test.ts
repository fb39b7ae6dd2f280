// berth du: logical bytes per repository (its tagged
// images, each counted whole) against bytes stored once, equal to the
// fixture's known sizes; unique bytes (what only that repository uses) add up
// with shared and unreferenced bytes to what is stored.
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import type { Usage } from '../storage/du';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { buildFixture, dedupe, sumBytes, type FixtureImage } from './helpers/gc-fixture';
import { blob, type Blob } from './helpers/registry-client';

/** Everything one image is made of: manifest, config, layers, and for an index its children. */
function parts(img: FixtureImage): Blob[] {
  return dedupe([blob(img.bytes), ...img.blobs, ...(img.children ?? []).flatMap(parts)]);
}

t.test('du figures equal the fixture sizes', async (t) => {
  const root = tempDir('berth-du-');
  const { fixture } = await buildFixture(new FilesystemDriver({ rootdirectory: root }));

  const repos = ['a/app', 'b/app', 'c/app'];
  const manifests = [...fixture.kept, ...fixture.untagged].map((i) => blob(i.bytes));
  const stored = sumBytes(dedupe([...fixture.allBlobs, ...manifests]));
  // What each repository links: b/app its image and stray layer, c/app its untagged image; a/app the rest.
  // The base layers are in all three (shared); the orphan blob in none (unreferenced).
  const other = fixture.kept.find((i) => i.repo === 'b/app')!;
  const gone = fixture.untagged.find((i) => i.repo === 'c/app')!;
  const [base1, base2] = other.blobs.slice(1, 3);
  const shared = sumBytes([base1, base2]);
  const unreferenced = fixture.orphan.bytes.length;
  const onlyB = sumBytes([blob(other.bytes), other.blobs[0], other.blobs[3], fixture.strayLink.blob]);
  const onlyC = sumBytes([blob(gone.bytes), ...gone.blobs.filter((b) => b.digest !== base1.digest)]);
  const unique: Record<string, number> = { 'a/app': stored - shared - unreferenced - onlyB - onlyC, 'b/app': onlyB, 'c/app': onlyC };
  const expected = repos.map((repo) => {
    const images = fixture.tagged.filter((i) => i.repo === repo);
    return {
      repository: repo,
      images: images.length,
      logicalBytes: images.reduce((n, i) => n + sumBytes(parts(i)), 0),
      uniqueBytes: unique[repo],
    };
  });
  const logical = expected.reduce((n, r) => n + r.logicalBytes, 0);
  t.ok(logical > stored / 2, 'the fixture shares layers, so there is something to see');

  const check = (u: Usage, where: string) => {
    t.same(
      u.repositories.map(({ repository, images, logicalBytes, uniqueBytes }) => ({ repository, images, logicalBytes, uniqueBytes })),
      expected,
      `${where}: per repository`,
    );
    t.equal(u.logicalBytes, logical, `${where}: logical total`);
    t.equal(u.storedBytes, stored, `${where}: stored total`);
    t.equal(u.dedupRatio, logical / stored, `${where}: dedup ratio`);
    t.match(u, { sharedBytes: shared, sharedBlobs: 2, unreferencedBytes: unreferenced, unreferencedBlobs: 1 }, `${where}: shared and unreferenced`);
    t.equal(u.repositories.reduce((n, r) => n + r.uniqueBytes, 0) + u.sharedBytes + u.unreferencedBytes, u.storedBytes, `${where}: unique + shared + unreferenced = stored`);
  };

  const cli = await runCli(['du', '--json'], root);
  t.equal(cli.code, 0, cli.stderr);
  check(JSON.parse(cli.stdout), 'berth du');
  const table = await runCli(['du'], root);
  t.match(table.stdout, /^REPOSITORY\s+IMAGES\s+LOGICAL\s+UNIQUE\na\/app\s+2\s/m);
  t.match(table.stdout, /dedup ratio \d+\.\d\d/);
  t.match(table.stdout, /^LOGICAL: tagged images as clients see them\. UNIQUE: bytes only that repository uses \(deleting it frees them\)\.$/m, 'the table says what UNIQUE is');
  t.match(table.stdout, /^stored [\d.]+ KiB = [\d.]+ KiB unique \+ [\d.]+ KiB shared by 2\+ repositories \(2 blobs\) \+ \d+ B unreferenced \(1 blob, gc removes them\)$/m, 'and how stored adds up');

});
