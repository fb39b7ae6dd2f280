// Build the configured storage driver. The config layer guarantees exactly one.
import type { Config } from '../server/config';
import type { StorageDriver } from './driver';
import { FilesystemDriver } from './drivers/filesystem';
import type { S3DriverOptions } from './drivers/s3';

export function createDriver(storage: Config['storage']): StorageDriver {
  if (storage.filesystem) return new FilesystemDriver({ ...storage.filesystem, readonly: storage.maintenance.readonly.enabled });
  if (storage.s3) {
    // Loaded only when used: the AWS SDK costs ~20 MB of memory a filesystem registry does not need.
    const { S3Driver } = require('./drivers/s3') as typeof import('./drivers/s3');
    return new S3Driver(storage.s3 as S3DriverOptions);
  }
  throw new Error('no storage driver configured');
}
