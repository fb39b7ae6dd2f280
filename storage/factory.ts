// Build the configured storage driver. The config layer guarantees exactly one.
import type { Config } from '../server/config';
import type { StorageDriver } from './driver';
import { FilesystemDriver } from './drivers/filesystem';
import { S3Driver } from './drivers/s3';

export function createDriver(storage: Config['storage']): StorageDriver {
  if (storage.filesystem) return new FilesystemDriver(storage.filesystem);
  if (storage.s3) return new S3Driver(storage.s3);
  throw new Error('no storage driver configured');
}
