// The driver conformance suite against the filesystem driver.
import fs from 'node:fs';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { driverSuite } from './helpers/driver-suite';
import { tempDir } from './helpers/berth';

const root = tempDir('berth-fs-suite-');

driverSuite('filesystem', {
  open: async () => new FilesystemDriver({ rootdirectory: root }),
  async teardown() {
    fs.rmSync(root, { recursive: true, force: true });
  },
});
