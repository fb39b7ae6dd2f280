// Stale-upload purging on S3 (a real Swift s3api store): an upload whose data
// is an open multipart upload is purged and its multipart upload aborted; a
// fresh one keeps its parts and completes; a direct blob write whose writer
// died is given up. Multipart uploads are listed with the SDK directly, not
// through the driver's own listing.
import crypto from 'node:crypto';
import t, { type Test } from 'tap';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parseDigest } from '../storage/digest';
import { S3Driver } from '../storage/drivers/s3';
import { paths } from '../storage/paths';
import { purgeUploads } from '../storage/purge';
import { startBerth } from './helpers/berth';
import { waitFor } from './helpers/ops-client';
import { finishUpload, getBytes, patchUpload, randomBlob, startUpload, uploadId, uploadStatus } from './helpers/registry-client';
import { startS3, type S3Server } from './helpers/s3';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;
const REPO = 'purge/app';
let s3: S3Server;

t.before(async () => {
  s3 = await startS3();
});
t.teardown(async () => s3?.stop());

/** A driver on a fresh root of the bucket, with 5 MiB parts so a 6 MiB PATCH opens a multipart upload. */
function driverAt(t: Test, root: string): S3Driver {
  const d = new S3Driver(s3.options({ rootdirectory: root, chunksize: 5 * MiB }));
  t.teardown(() => d.close());
  return d;
}

/** Open multipart uploads whose key starts with `prefix` (a driver path). */
async function multipartUnder(d: S3Driver, prefix: string): Promise<string[]> {
  const res = await d.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: d.key(prefix) }));
  return (res.Uploads ?? []).map((u) => u.Key!);
}

async function objectsUnder(d: S3Driver, prefix: string): Promise<string[]> {
  const res = await d.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: d.key(prefix) + '/' }));
  return (res.Contents ?? []).map((o) => o.Key!);
}

t.test('a stale upload is purged with its multipart upload; a fresh one completes', async (t) => {
  const root = `/purge-${crypto.randomBytes(4).toString('hex')}`;
  const d = driverAt(t, root);
  const b = await startBerth({
    env: s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: root, REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB), REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: 'false' }),
  });
  t.teardown(() => b.stop());

  const big = randomBlob(6 * MiB + 1234);
  const old = await startUpload(b.url, REPO);
  t.equal((await patchUpload(b.url, old, big.bytes, 0)).status, 202);
  const fresh = await startUpload(b.url, REPO);
  t.equal((await patchUpload(b.url, fresh, big.bytes.subarray(0, 6 * MiB), 0)).status, 202);
  const oldDir = paths.uploadDir(REPO, uploadId(old));
  const freshDir = paths.uploadDir(REPO, uploadId(fresh));
  t.same(await multipartUnder(d, oldDir), [d.key(paths.uploadData(REPO, uploadId(old)))], 'the old upload holds an open multipart upload');
  t.equal((await multipartUnder(d, freshDir)).length, 1, 'so does the fresh one');
  await d.putContent(paths.uploadStartedAt(REPO, uploadId(old)), Buffer.from(new Date(Date.now() - 2 * HOUR).toISOString()));

  const dry = await purgeUploads(d, { olderThanMs: HOUR, dryRun: true });
  t.same(dry, { scanned: 2, purged: 1, dryRun: true }, 'dry run: one of two would go');
  t.equal((await multipartUnder(d, oldDir)).length, 1, 'and its multipart upload is still open');

  const r = await purgeUploads(d, { olderThanMs: HOUR, dryRun: false });
  t.same(r, { scanned: 2, purged: 1, dryRun: false, abandonedWrites: 0 });
  t.same(await multipartUnder(d, oldDir), [], 'the stale multipart upload was aborted');
  t.same(await objectsUnder(d, oldDir), [], 'no object of the session is left');
  t.same(await uploadStatus(b.url, old), { status: 404, code: 'BLOB_UPLOAD_UNKNOWN' }, 'the registry no longer knows the upload');

  t.same(await uploadStatus(b.url, fresh), { status: 204, range: `0-${6 * MiB - 1}` }, 'the fresh upload kept its bytes');
  const done = await finishUpload(b.url, fresh, big.digest, big.bytes.subarray(6 * MiB));
  t.equal(done.status, 201, `and completes: ${await done.text()}`);
  const pulled = await getBytes(b.url, `/v2/${REPO}/blobs/${big.digest}`);
  t.ok(pulled.status === 200 && pulled.bytes.equals(big.bytes), 'its blob pulls back byte for byte');
  t.same(await multipartUnder(d, paths.repository(REPO)), [], 'no multipart upload is left in the repository');
});

t.test('a direct blob write whose writer died is aborted once older than the age', async (t) => {
  const d = driverAt(t, `/purge-${crypto.randomBytes(4).toString('hex')}`);
  const blob = randomBlob(6 * MiB);
  const data = paths.blobData(parseDigest(blob.digest));
  const w = await d.atomicWriter(data);
  await w.write(blob.bytes); // fills and sends part 1; the writer never commits
  await waitFor('the write to open a multipart upload', async () => (await multipartUnder(d, data)).length > 0, 5000);
  t.equal((await multipartUnder(d, data)).length, 1, 'the write holds an open multipart upload');

  t.same(await purgeUploads(d, { olderThanMs: HOUR, dryRun: false }), { scanned: 0, purged: 0, dryRun: false, abandonedWrites: 0 }, 'a recent write is left alone');
  const later = new Date(Date.now() + 2 * HOUR);
  t.same(await purgeUploads(d, { olderThanMs: HOUR, dryRun: true, now: later }), { scanned: 0, purged: 0, dryRun: true }, 'a dry run gives up nothing');
  t.equal((await multipartUnder(d, data)).length, 1);
  t.same(await purgeUploads(d, { olderThanMs: HOUR, dryRun: false, now: later }), { scanned: 0, purged: 0, dryRun: false, abandonedWrites: 1 }, 'two hours on it is stale');
  t.same(await multipartUnder(d, data), [], 'and its multipart upload was aborted');
  await t.rejects(w.commit(), 'the dead writer cannot complete it any more');
});
