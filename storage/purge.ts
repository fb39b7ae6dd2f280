// Purge upload sessions older than an age (distribution's
// storage.maintenance.uploadpurging). Deleting an upload's directory also
// aborts its multipart upload on drivers that have one; direct blob writes
// whose writer died (a crash mid-push) are given up the same way.
import { isNotFound, type StorageDriver } from './driver';
import { paths } from './paths';
import { listOrEmpty, repositoryNames } from './repositories';

export interface PurgeResult {
  scanned: number;
  purged: number;
  dryRun: boolean;
  /** Direct blob writes given up (drivers with atomicWriter; not counted in a dry run). */
  abandonedWrites?: number;
}

export async function purgeUploads(driver: StorageDriver, opts: { olderThanMs: number; dryRun: boolean; now?: Date }): Promise<PurgeResult> {
  const cutoff = (opts.now ?? new Date()).getTime() - opts.olderThanMs;
  const result: PurgeResult = { scanned: 0, purged: 0, dryRun: opts.dryRun };
  for (const repo of await repositoryNames(driver, (c) => c.includes('_uploads'))) {
    for (const id of await listOrEmpty(driver, paths.uploadsRoot(repo))) {
      result.scanned++;
      let started: number;
      try {
        started = Date.parse((await driver.getContent(paths.uploadStartedAt(repo, id))).toString('utf8').trim());
      } catch (e) {
        if (!isNotFound(e)) throw e;
        // No start time (a crash between writes): judge by the directory's age.
        started = (await driver.stat(paths.uploadDir(repo, id)).catch(() => undefined))?.modTime.getTime() ?? 0;
      }
      if (!(started < cutoff)) continue;
      result.purged++;
      if (!opts.dryRun) await driver.delete(paths.uploadDir(repo, id)).catch((e) => { if (!isNotFound(e)) throw e; });
    }
  }
  if (driver.abortStaleWrites && !opts.dryRun) result.abandonedWrites = await driver.abortStaleWrites(paths.blobsRoot, new Date(cutoff));
  return result;
}
