// `berth gc --config FILE`: the storage, min-age and a retention policy come
// from a YAML file alone (no REGISTRY_* variables). The policy's untaggedage
// drops an untagged manifest older than the age, with the blobs only it used,
// and keeps a recent untagged one; repositories outside its pattern keep
// their untagged manifests.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseDigest } from '../storage/digest';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import type { GcReport } from '../storage/gc';
import { paths } from '../storage/paths';
import { ContentStore } from '../storage/store';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { putImage, type FixtureImage } from './helpers/gc-fixture';
import { blob, randomBlob } from './helpers/registry-client';

/** Make a manifest revision look pushed `hours` ago (untaggedage judges by its link's age). */
function backdate(root: string, img: FixtureImage, hours: number): void {
  const when = new Date(Date.now() - hours * 3_600_000);
  fs.utimesSync(path.join(root, paths.revisionLink(img.repo, parseDigest(img.digest))), when, when);
}

async function pulls(store: ContentStore, img: FixtureImage): Promise<boolean> {
  try {
    const m = await store.getManifest(img.repo, img.digest);
    for (const b of img.blobs) await store.statBlob(img.repo, b.digest);
    return m.bytes.equals(img.bytes);
  } catch {
    return false;
  }
}

t.test('gc --config FILE applies the file\'s retention: untaggedage drops old untagged manifests, keeps recent ones', async (t) => {
  const dir = tempDir('berth-gc-config-');
  const root = path.join(dir, 'store');
  const store = new ContentStore(new FilesystemDriver({ rootdirectory: root }), { deleteEnabled: true, linkCacheTtlMs: 1 });

  const base = randomBlob(4000);
  const old = await putImage(store, 'team/app', 'latest', [randomBlob(100), base, randomBlob(1500)]);
  const cur = await putImage(store, 'team/app', 'latest', [randomBlob(110), base, randomBlob(1600)]); // old is now untagged
  const recent = await putImage(store, 'team/app', undefined, [randomBlob(120), base, randomBlob(1700)]); // pushed by digest
  const elsewhere = await putImage(store, 'other/app', undefined, [randomBlob(130), base]);
  backdate(root, old, 2);
  backdate(root, elsewhere, 2);

  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(
    file,
    [
      'version: 0.1',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${root}`,
      'berth:',
      '  gc:',
      '    minage: 0s',
      '    retention:',
      '      - repository: "team/*"',
      '        untaggedage: 1h',
      '',
    ].join('\n'),
  );
  // No root in the environment: without the file gc would look at ./data.
  const gc = (...args: string[]) => runCli(['gc', '--config', file, ...args], undefined);

  const dry = await gc('--dry-run');
  t.equal(dry.code, 0, 'dry run', { stderr: dry.stderr });
  t.match(dry.stdout, `manifests that would be removed (1):\n  team/app@${old.digest}\n`, 'the dry run names the old untagged manifest only');
  t.notMatch(dry.stdout, /tags that would be removed/, 'and no tag');

  const flag = JSON.parse((await gc('--dry-run', '--delete-untagged', '--json')).stdout) as GcReport;
  t.same(
    flag.removed.manifests.sort(),
    [`other/app@${elsewhere.digest}`, `team/app@${old.digest}`].sort(),
    '--delete-untagged would also take the untagged manifest outside the pattern; the policy\'s age still protects the recent one (storage/GC.md)',
  );

  const r = await gc('--json');
  t.equal(r.code, 0, 'gc', { stderr: r.stderr });
  const report = JSON.parse(r.stdout) as GcReport;
  t.same(report.removed.manifests, [`team/app@${old.digest}`], 'only the manifest untagged for longer than untaggedage went');
  t.same(report.removed.tags, [], 'no tag went');
  const freed = [blob(old.bytes), old.blobs[0], old.blobs[2]];
  t.same(report.removed.blobs.sort(), freed.map((b) => b.digest).sort(), 'with its config, its own layer and its manifest blob (min-age 0s from the file)');
  t.equal(report.bytesFreed, freed.reduce((n, b) => n + b.bytes.length, 0), 'bytes freed');

  t.notOk(await pulls(store, old), 'the old untagged image is gone');
  for (const img of [cur, recent, elsewhere]) t.ok(await pulls(store, img), `${img.repo}@${img.ref.slice(0, 19)} stays`);
});
