// The repository table as one object, so a replica starts by reading it and
// the feed since, instead of walking the store. One JSON line per repository.
import { isNotFound, type StorageDriver } from '../driver';
import { indexKeys } from './keys';
import type { RepoEntry } from './table';

const VERSION = 1;

export interface Snapshot {
  /** Feed position the table was current to. */
  position: number;
  writtenAt: number;
  entries: RepoEntry[];
}

export async function saveSnapshot(driver: StorageDriver, entries: RepoEntry[], position: number): Promise<void> {
  const lines = [JSON.stringify({ version: VERSION, position, writtenAt: Date.now(), count: entries.length })];
  for (const e of entries) lines.push(JSON.stringify([e.name, e.tags, e.images, e.lastPush, e.logicalBytes, e.uniqueBytes, e.summarizedAt]));
  await driver.putContent(indexKeys.snapshot, Buffer.from(lines.join('\n')));
}

/** undefined when there is none or it cannot be read (an older version, a torn write). */
export async function loadSnapshot(driver: StorageDriver): Promise<Snapshot | undefined> {
  let text: string;
  try {
    text = (await driver.getContent(indexKeys.snapshot)).toString('utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  try {
    const lines = text.split('\n');
    const head = JSON.parse(lines[0]) as { version: number; position: number; writtenAt: number; count: number };
    if (head.version !== VERSION || lines.length - 1 !== head.count) return undefined;
    const entries: RepoEntry[] = [];
    for (let i = 1; i < lines.length; i++) {
      const [name, tags, images, lastPush, logicalBytes, uniqueBytes, summarizedAt] = JSON.parse(lines[i]) as [string, ...number[]];
      entries.push({ name, tags, images, lastPush, logicalBytes, uniqueBytes, summarizedAt });
    }
    return { position: head.position, writtenAt: head.writtenAt, entries };
  } catch {
    return undefined;
  }
}
