// Build the configured storage driver. The config layer guarantees exactly one.
import type { Config } from '../server/config';
import type { StorageDriver } from './driver';
import { FilesystemDriver } from './drivers/filesystem';

export function createDriver(storage: Config['storage']): StorageDriver {
  if (storage.filesystem) return new FilesystemDriver(storage.filesystem);
  throw new Error('no storage driver configured');
}
