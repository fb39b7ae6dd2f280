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
