// berth du: logical bytes per repository (its tagged
// images, each counted whole) against bytes stored once, equal to the
// fixture's known sizes.
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
  const expected = repos.map((repo) => {
    const images = fixture.tagged.filter((i) => i.repo === repo);
    return {
      repository: repo,
      images: images.length,
      logicalBytes: images.reduce((n, i) => n + sumBytes(parts(i)), 0),
      uniqueBytes: sumBytes(dedupe(images.flatMap(parts))),
    };
  });
  const manifests = [...fixture.kept, ...fixture.untagged].map((i) => blob(i.bytes));
  const stored = sumBytes(dedupe([...fixture.allBlobs, ...manifests]));
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
  };

  const cli = await runCli(['du', '--json'], root);
  t.equal(cli.code, 0, cli.stderr);
  check(JSON.parse(cli.stdout), 'berth du');
  const table = await runCli(['du'], root);
  t.match(table.stdout, /^REPOSITORY\s+IMAGES\s+LOGICAL\s+UNIQUE\na\/app\s+2\s/m);
  t.match(table.stdout, /dedup ratio \d+\.\d\d/);

});
