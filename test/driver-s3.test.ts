// The driver conformance suite against the S3 driver on a real S3 store
// (Swift s3api started by the fixture), with the multipart-copy threshold
// lowered so moves exercise UploadPartCopy.
import { S3Driver } from '../storage/drivers/s3';
import { driverSuite } from './helpers/driver-suite';
import { startS3, type S3Server } from './helpers/s3';

const MiB = 1024 * 1024;
let s3: S3Server | undefined;
const started = startS3();

driverSuite('s3', {
  async open() {
    s3 ??= await started;
    return new S3Driver(
      s3.options({
        rootdirectory: '/suite-root',
        chunksize: 5 * MiB,
        multipartcopythresholdsize: 6 * MiB,
        multipartcopychunksize: 5 * MiB,
        multipartcopymaxconcurrency: 4,
      }),
    );
  },
  moveSize: 12 * MiB + 3,
  // Just over one DeleteObjects batch of 1,000 keys.
  treeFiles: 1001,
  // The fixture is Swift with one replica (see SuiteOptions).
  overwriteMayVanish: true,
  async teardown() {
    await (await started).stop();
  },
});
