// The change feed: how replicas on one store hear of each other's writes.
// Each replica appends objects of its own (no two writers share a key, so no
// conditional writes are needed) under a directory per minute; every replica
// lists the current minutes every poll interval and applies what is new.
// Clocks of replicas must agree within OVERLAP_MS: entries are looked for
// that far back.
import crypto from 'node:crypto';
import os from 'node:os';
import { isNotFound, type StorageDriver } from '../driver';
import { listOrEmpty } from '../repositories';
import { indexKeys } from './keys';

export type ChangeOp =
  /** A repository came into being (its first link). */
  | 'create'
  /** A manifest was stored, and tagged when `tag` is set. */
  | 'manifest'
  | 'tag-delete'
  | 'manifest-delete'
  | 'repo-delete'
  /** The repository's figures changed without a write of its own (a blob it used is now shared, or no longer). */
  | 'refresh';

export interface ChangeEvent {
  repo: string;
  op: ChangeOp;
  tag?: string;
  digest?: string;
  /** Epoch ms of the change. */
  at: number;
  by?: string;
}

const OVERLAP_MS = 10_000;

async function listPageOrEmpty(driver: StorageDriver, dir: string, after: string): Promise<{ names: string[]; next?: string }> {
  try {
    return await driver.listPage(dir, after, 1000);
  } catch (e) {
    if (isNotFound(e)) return { names: [] };
    throw e;
  }
}
const MINUTE = 60_000;

export class ChangeFeed {
  readonly replica = `${os.hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 40)}.${process.pid}.${crypto.randomBytes(3).toString('hex')}`;
  private seq = 0;
  /** Keys applied within the overlap window, to skip them on the next poll. */
  private seen = new Map<string, number>();
  /** Everything up to here (epoch ms, writers' clocks) has been applied, minus the overlap. */
  private cursor = Date.now();

  constructor(private readonly driver: StorageDriver) {}

  /** Where the feed has been read to: a snapshot written now may be replayed from here. */
  get position(): number {
    return this.cursor;
  }

  /** Read from `since` on (after loading a snapshot or walking the store). */
  reset(since: number): void {
    this.cursor = since;
    this.seen = new Map();
  }

  /**
   * Record events (one request's worth) as one object. `applied`: this replica
   * has applied them already, so its own polls skip them.
   */
  async append(events: ChangeEvent[], applied: boolean): Promise<void> {
    if (events.length === 0) return;
    const now = Date.now();
    const key = `${indexKeys.feedMinute(Math.floor(now / MINUTE))}/${String(now).padStart(13, '0')}-${this.replica}-${++this.seq}`;
    if (applied) this.seen.set(key.slice(key.lastIndexOf('/') + 1), now);
    await this.driver.putContent(key, Buffer.from(JSON.stringify(events)));
  }

  /** Events other replicas appended since the last poll, oldest first. */
  async poll(): Promise<ChangeEvent[]> {
    const now = Date.now();
    const from = this.cursor - OVERLAP_MS;
    const fresh: { name: string; dir: string; at: number }[] = [];
    for (let m = Math.floor(from / MINUTE); m <= Math.floor((now + OVERLAP_MS) / MINUTE); m++) {
      const dir = indexKeys.feedMinute(m);
      // Names start with the writer's 13-digit ms: list from the window's start only.
      let after: string | undefined = String(from - 1).padStart(13, '0');
      while (after !== undefined) {
        const page = await listPageOrEmpty(this.driver, dir, after);
        for (const name of page.names) {
          const at = Number(name.slice(0, 13));
          if (at >= from && !this.seen.has(name)) fresh.push({ name, dir, at });
        }
        after = page.next;
      }
    }
    fresh.sort((a, b) => (a.name < b.name ? -1 : 1));
    const out: ChangeEvent[] = [];
    for (const f of fresh) {
      this.seen.set(f.name, f.at);
      try {
        const events = JSON.parse((await this.driver.getContent(`${f.dir}/${f.name}`)).toString('utf8')) as ChangeEvent[];
        if (Array.isArray(events)) out.push(...events.filter((e) => e && typeof e.repo === 'string' && typeof e.op === 'string'));
      } catch (e) {
        // Pruned between list and read, or a torn object from a writer that died: nothing to apply.
        if (!isNotFound(e) && !(e instanceof SyntaxError)) throw e;
      }
    }
    this.cursor = now;
    // A new map each poll: only the window's keys survive, and no table grows with the feed.
    const keep = new Map<string, number>();
    for (const [k, at] of this.seen) if (at >= now - 2 * OVERLAP_MS) keep.set(k, at);
    this.seen = keep;
    return out;
  }

  /** Remove minutes older than `retentionMs` (run by one replica: the index lease holder). */
  async prune(retentionMs: number): Promise<number> {
    const cutoff = Math.floor((Date.now() - retentionMs) / MINUTE);
    let removed = 0;
    for (const m of await listOrEmpty(this.driver, indexKeys.feedRoot)) {
      if (!(Number(m) < cutoff)) continue;
      await this.driver.delete(indexKeys.feedMinute(Number(m))).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
      removed++;
    }
    return removed;
  }
}
