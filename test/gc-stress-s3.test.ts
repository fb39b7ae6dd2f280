// The concurrent push/mount/GC stress loop (test/helpers/gc-stress.ts) on S3
// (a real Swift s3api store), smaller than on the filesystem: every S3
// request is a round trip through the store, and each `berth gc` a process.
import crypto from 'node:crypto';
import t from 'tap';
import { gcStress } from './helpers/gc-stress';
import { startS3, type S3Server } from './helpers/s3';

let s3: S3Server;
t.before(async () => {
  s3 = await startS3();
});
t.teardown(async () => s3?.stop());

t.test('pushes and mounts while GC runs repeatedly lose nothing acknowledged (S3)', async (t) => {
  const env = s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: `/stress-${crypto.randomBytes(4).toString('hex')}` });
  await gcStress(t, {
    berth: { env },
    cliEnv: env,
    iterations: Number(process.env.GC_STRESS_S3_ITERATIONS ?? 15),
    timeLimitMs: Number(process.env.GC_STRESS_S3_MS ?? 45_000),
    minAcked: 6,
  });
});
