// Enumerate repositories in distribution's layout. Name components never start
// with '_', so '_manifests', '_layers', '_uploads' mark a repository's own data
// and the walk never descends into them.
import { isNotFound, type StorageDriver } from './driver';
import { paths } from './paths';

export async function listOrEmpty(driver: StorageDriver, dir: string): Promise<string[]> {
  try {
    return await driver.list(dir);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/** A directory is a repository once something was pushed to it (as distribution's catalog counts them). */
export const isRepository = (children: string[]) => children.includes('_manifests') || children.includes('_layers');

/** Every repository directory whose children satisfy `marker`, sorted by name. */
export async function repositoryNames(driver: StorageDriver, marker: (children: string[]) => boolean = isRepository): Promise<string[]> {
  if (driver.listMarkedDirs) return markedRepositories(driver, marker);
  const out: string[] = [];
  const visit = async (prefix: string): Promise<void> => {
    const dir = prefix ? `${paths.repositoriesRoot}/${prefix}` : paths.repositoriesRoot;
    const children = await listOrEmpty(driver, dir);
    if (prefix && marker(children)) out.push(prefix);
    const subdirs = children.filter((c) => !c.startsWith('_'));
    for (let i = 0; i < subdirs.length; i += 16) {
      await Promise.all(subdirs.slice(i, i + 16).map((c) => visit(prefix ? `${prefix}/${c}` : c)));
    }
  };
  await visit('');
  return out.sort();
}

/**
 * The same set from the driver's marked-directory listing (S3: a request per
 * 1,000 repositories instead of one per directory). Every directory holding
 * an '_' child is a candidate; for the catalog's own marker they are taken as
 * they are, so a repository whose only content is an unfinished upload is
 * listed too until the upload completes or is purged. Other markers check
 * each candidate's children.
 */
async function markedRepositories(driver: StorageDriver, marker: (children: string[]) => boolean): Promise<string[]> {
  const candidates = await driver.listMarkedDirs!(paths.repositoriesRoot, '_');
  if (marker === isRepository) return candidates.sort();
  const out: string[] = [];
  for (let i = 0; i < candidates.length; i += 16) {
    const batch = candidates.slice(i, i + 16);
    const children = await Promise.all(batch.map((c) => listOrEmpty(driver, `${paths.repositoriesRoot}/${c}`)));
    batch.forEach((c, j) => marker(children[j]) && out.push(c));
  }
  return out.sort();
}
