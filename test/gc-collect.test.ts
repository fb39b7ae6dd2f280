// GC correctness on the filesystem driver (the same suite runs on S3).
import fs from 'node:fs';
import t from 'tap';
import { FilesystemDriver } from '../storage/drivers/filesystem';
import { tempDir } from './helpers/berth';
import { gcSuite } from './helpers/gc-suite';

gcSuite(t, async () => {
  const root = tempDir('berth-gc-');
  return { driver: new FilesystemDriver({ rootdirectory: root }), cleanup: async () => fs.rmSync(root, { recursive: true, force: true }) };
});
