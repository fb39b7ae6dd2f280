// Stale-upload purging on the filesystem (storage.maintenance.uploadpurging):
// by the store API (with and without dryrun), by `berth gc`, and on serve's
// own interval. Uploads are started over real HTTP and aged by rewriting their
// startedat, which is what the purge judges them by.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import type { GcReport } from '../storage/gc';
import { paths } from '../storage/paths';
import { purgeUploads } from '../storage/purge';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { runCli } from './helpers/cli';
import { waitFor } from './helpers/ops-client';
import { finishUpload, getBytes, patchUpload, randomBlob, startUpload, uploadId, uploadStatus } from './helpers/registry-client';

const HOUR = 3_600_000;
const REPO = 'purge/app';

/** A berth on `root` whose own purge stays out of the way unless env turns it on. */
async function berthOn(t: Test, root: string, env: Record<string, string> = {}): Promise<Berth> {
  const b = await startBerth({ root, env: { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false', ...env } });
  t.teardown(() => b.stop());
  return b;
}

/** Make an upload look started `hours` ago. */
function backdate(root: string, loc: string, hours: number): void {
  fs.writeFileSync(path.join(root, paths.uploadStartedAt(REPO, uploadId(loc))), new Date(Date.now() - hours * HOUR).toISOString());
}

const uploadDirExists = (root: string, loc: string) => fs.existsSync(path.join(root, paths.uploadDir(REPO, uploadId(loc))));

t.test('purgeUploads removes uploads older than the age; fresh ones stay and complete; dryrun only reports', async (t) => {
  const root = tempDir('berth-purge-');
  const b = await berthOn(t, root);
  const driver = new FilesystemDriver({ rootdirectory: root });

  const chunk = randomBlob(70_000).bytes;
  const old = await startUpload(b.url, REPO);
  t.equal((await patchUpload(b.url, old, chunk, 0)).status, 202);
  const oldEmpty = await startUpload(b.url, REPO);
  const crashed = await startUpload(b.url, REPO);
  const fresh = await startUpload(b.url, REPO);
  const freshBlob = randomBlob(90_000);
  t.equal((await patchUpload(b.url, fresh, freshBlob.bytes.subarray(0, 50_000), 0)).status, 202);
  backdate(root, old, 200);
  backdate(root, oldEmpty, 169);
  // A session whose startedat was never written (a crash): judged by its directory's age.
  fs.rmSync(path.join(root, paths.uploadStartedAt(REPO, uploadId(crashed))));
  const longAgo = new Date(Date.now() - 200 * HOUR);
  fs.utimesSync(path.join(root, paths.uploadDir(REPO, uploadId(crashed))), longAgo, longAgo);

  const dry = await purgeUploads(driver, { olderThanMs: 168 * HOUR, dryRun: true });
  t.same(dry, { scanned: 4, purged: 3, dryRun: true }, 'dry run: three of four would go');
  t.same(await uploadStatus(b.url, old), { status: 204, range: '0-69999' }, 'the old upload is still there after the dry run');
  t.equal((await uploadStatus(b.url, oldEmpty)).status, 204, 'and the empty one');
  t.ok(uploadDirExists(root, crashed), 'and the crashed one');

  const r = await purgeUploads(driver, { olderThanMs: 168 * HOUR, dryRun: false });
  t.same(r, { scanned: 4, purged: 3, dryRun: false });
  for (const loc of [old, oldEmpty]) {
    t.same(await uploadStatus(b.url, loc), { status: 404, code: 'BLOB_UPLOAD_UNKNOWN' }, 'a purged upload is unknown');
    t.notOk(uploadDirExists(root, loc), 'and its directory is gone');
  }
  t.notOk(uploadDirExists(root, crashed), 'the crashed session is gone');
  const resumed = await patchUpload(b.url, old, chunk, 70_000);
  t.equal(resumed.status, 404, 'a purged upload cannot be continued');

  t.same(await uploadStatus(b.url, fresh), { status: 204, range: '0-49999' }, 'the fresh upload kept its bytes');
  const done = await finishUpload(b.url, fresh, freshBlob.digest, freshBlob.bytes.subarray(50_000));
  t.equal(done.status, 201, `the fresh upload completes: ${await done.text()}`);
  const pulled = await getBytes(b.url, `/v2/${REPO}/blobs/${freshBlob.digest}`);
  t.ok(pulled.status === 200 && pulled.bytes.equals(freshBlob.bytes), 'and its blob pulls back byte for byte');
  t.same(await purgeUploads(driver, { olderThanMs: 168 * HOUR, dryRun: false }), { scanned: 0, purged: 0, dryRun: false }, 'nothing left to scan');
});

t.test('berth gc purges stale uploads first when uploadpurging is enabled', async (t) => {
  const root = tempDir('berth-purge-gc-');
  const b = await berthOn(t, root);
  const old = await startUpload(b.url, REPO);
  const fresh = await startUpload(b.url, REPO);
  backdate(root, old, 2);
  const env = { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '1h' };

  const dry = await runCli(['gc', '--dry-run'], root, env);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /; 1 stale uploads to purge/, 'the dry run reports the stale upload');
  t.equal((await uploadStatus(b.url, old)).status, 204, 'and leaves it');

  const off = await runCli(['gc', '--json'], root, { ...env, REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false' });
  t.equal(off.code, 0, off.stderr);
  t.equal((JSON.parse(off.stdout) as GcReport).uploads, undefined, 'purging disabled: gc leaves uploads alone');
  t.equal((await uploadStatus(b.url, old)).status, 204);

  const run = await runCli(['gc', '--json'], root, env);
  t.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as GcReport;
  t.same(report.uploads, { scanned: 2, purged: 1, dryRun: false });
  t.ok(report.phases.some((p) => p.name === 'uploads'), 'a timed phase of its own');
  t.same(await uploadStatus(b.url, old), { status: 404, code: 'BLOB_UPLOAD_UNKNOWN' }, 'the stale upload is gone');
  t.equal((await uploadStatus(b.url, fresh)).status, 204, 'the fresh one stays');
});

/** A berth purging uploads older than 1h every second, with one upload started 2h ago and one just now. */
async function servedPurge(t: Test, env: Record<string, string> = {}) {
  const root = tempDir('berth-purge-serve-');
  const b = await berthOn(t, root, {
    REGISTRY_LOG_LEVEL: 'info',
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'true',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '1h',
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL: '1s',
    ...env,
  });
  const old = await startUpload(b.url, REPO);
  const fresh = await startUpload(b.url, REPO);
  backdate(root, old, 2);
  // serve's purge runs it logged, newest last
  const runs = (): { scanned: number; purged: number; dryRun: boolean }[] =>
    b
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"upload purge"'))
      .map((l) => JSON.parse(l));
  return { b, old, fresh, runs };
}

t.test('serve purges on its configured interval', async (t) => {
  const { b, old, fresh, runs } = await servedPurge(t);
  await waitFor('the stale upload purged', async () => (await uploadStatus(b.url, old)).status === 404, 10_000);
  t.same(await uploadStatus(b.url, old), { status: 404, code: 'BLOB_UPLOAD_UNKNOWN' }, 'the stale upload was purged by serve itself');
  t.equal((await uploadStatus(b.url, fresh)).status, 204, 'the fresh one stays');
  t.ok(runs().some((r) => r.purged === 1 && !r.dryRun), 'a logged run purged it');
  const seen = runs().length;
  await waitFor('two more runs', () => runs().length >= seen + 2, 10_000);
  t.ok(runs().length >= seen + 2, 'and runs keep coming on the interval');
  t.notOk(/upload purge failed/.test(b.output()), 'no run failed');
});

t.test('serve with dryrun reports stale uploads and keeps them', async (t) => {
  const { b, old, fresh, runs } = await servedPurge(t, { REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN: 'true' });
  await waitFor('two runs', () => runs().length >= 2, 10_000);
  t.ok(runs().length >= 2, 'runs happened');
  t.ok(runs().every((r) => r.dryRun && r.scanned === 2 && r.purged === 1), 'each reported the stale upload as one to purge');
  t.equal((await uploadStatus(b.url, old)).status, 204, 'and left it in place');
  t.equal((await uploadStatus(b.url, fresh)).status, 204);
});
