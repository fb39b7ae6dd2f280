// The GC correctness suite on the S3 driver against a real S3 store (Swift
// s3api started by the fixture); each case gets its own root in the bucket.
import crypto from 'node:crypto';
import t from 'tap';
import { S3Driver } from '../storage/drivers/s3';
import { gcSuite } from './helpers/gc-suite';
import { startS3 } from './helpers/s3';

const started = startS3();
t.teardown(async () => (await started).stop());

gcSuite(t, async () => {
  const s3 = await started;
  const driver = new S3Driver(s3.options({ rootdirectory: `/gc-${crypto.randomBytes(4).toString('hex')}` }));
  return { driver, cleanup: () => driver.close() };
});
