// The collector lease (storage/lease.ts) seen from `berth gc`: while another
// collector holds it a run is refused with exit 3 and touches nothing (a dry
// run needs no lease); once it is released, or its holder died and it
// expired, the next run collects.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseDigest } from '../storage/digest';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { Lease, LEASE_PATH } from '../storage/lease';
import { paths } from '../storage/paths';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { buildFixture } from './helpers/gc-fixture';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const GC = ['gc', '--min-age', '0s'];

/** A store with garbage (the fixture's orphan blob), another collector's driver on it, and probes. */
async function setup(t: Test) {
  const root = tempDir('berth-gc-lease-');
  const driver = new FilesystemDriver({ rootdirectory: root });
  const { fixture } = await buildFixture(driver);
  const orphanFile = path.join(root, paths.blobData(parseDigest(fixture.orphan.digest)));
  return {
    root,
    driver,
    orphanPresent: () => fs.existsSync(orphanFile),
    leasePresent: () => fs.existsSync(path.join(root, LEASE_PATH)),
    refused: async (what: string) => {
      const r = await runCli(GC, root);
      t.equal(r.code, 3, `${what}: exit 3`);
      t.equal(r.stderr, 'berth gc: another garbage collector holds the lease; try again later\n', 'with the documented message');
      t.equal(r.stdout, '', 'and no report');
    },
  };
}

t.test('a second collector is refused while the lease is held and runs once it is released', async (t) => {
  const { root, driver, orphanPresent, leasePresent, refused } = await setup(t);
  const other = await Lease.acquire(driver, 'other-host/1/abcd', 60_000, 0);
  t.ok(other, 'the other collector holds the lease');

  await refused('gc while the lease is held');
  t.ok(orphanPresent(), 'the refused run deleted nothing');
  t.ok(await other!.held(), 'nor took the lease');

  const dry = await runCli([...GC, '--dry-run'], root);
  t.equal(dry.code, 0, 'a dry run needs no lease', { stderr: dry.stderr });
  t.match(dry.stdout, /^gc: would free .* in 2 blobs;/m, 'and reports the garbage');
  t.ok(await other!.held(), 'the dry run left the lease alone');

  await other!.release();
  t.notOk(leasePresent(), 'released');
  const run = await runCli(GC, root);
  t.equal(run.code, 0, 'gc runs once the lease is free', { stderr: run.stderr });
  t.match(run.stdout, /^gc: freed .* in 2 blobs;/m);
  t.notOk(orphanPresent(), 'and collects');
  t.notOk(leasePresent(), 'it released the lease when done');
});

t.test('a lease whose holder died stops blocking when it expires', async (t) => {
  const { root, driver, orphanPresent, leasePresent, refused } = await setup(t);
  const ttl = 6000;
  const until = Date.now() + ttl;
  t.ok(await Lease.acquire(driver, 'crashed-host/2/dead', ttl, 0), 'a collector took the lease and then died (never released)');

  await refused('gc before the lease expires');
  t.ok(orphanPresent(), 'nothing deleted');
  t.ok(leasePresent(), 'the dead holder\'s lease is still in the store');

  await sleep(Math.max(0, until - Date.now() + 100));
  const run = await runCli(GC, root);
  t.equal(run.code, 0, 'gc runs after the expiry', { stderr: run.stderr });
  t.notOk(orphanPresent(), 'and collects');
  t.notOk(leasePresent(), 'and releases the lease it took over');
});
