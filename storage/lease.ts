// Coordination between garbage collectors and writers, through the store only
// (no locks, no side channel), so it works across replicas and on S3. See
// storage/GC.md for the protocol and why it is safe.
//
// - The lease: at most one collector runs at a time (an efficiency measure;
//   correctness does not depend on it).
// - Sweep intents: before a collector deletes anything it writes the list of
//   keys it is about to delete, then re-reads the store. A writer that has just
//   made something visible reads the intents afterwards; if one names its keys
//   it waits for the sweep to end, then re-checks and restores what it needs.
import crypto from 'node:crypto';
import os from 'node:os';
import type { Digest } from './digest';
import { isNotFound, type StorageDriver } from './driver';
import { paths } from './paths';
import { listOrEmpty } from './repositories';

const GC_ROOT = `${paths.root}/_berth/gc`;
export const LEASE_PATH = `${GC_ROOT}/lease`;
export const INTENTS_DIR = `${GC_ROOT}/intents`;

/** The keys intents and writers agree on. */
export const intentKey = {
  blob: (d: Digest | string) => `blob:${typeof d === 'string' ? d : d.value}`,
  layer: (repo: string, d: Digest | string) => `layer:${repo}@${typeof d === 'string' ? d : d.value}`,
  revision: (repo: string, d: Digest | string) => `revision:${repo}@${typeof d === 'string' ? d : d.value}`,
  tag: (repo: string, tag: string) => `tag:${repo}:${tag}`,
};

interface Intent {
  holder: string;
  /** Epoch ms after which the collector deletes nothing more under this intent. */
  until: number;
  keys: string[];
}

// Writers tolerate this much clock difference between replicas before they
// treat an expired intent as abandoned.
const CLOCK_SLACK_MS = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function newHolderId(): string {
  return `${os.hostname()}/${process.pid}/${crypto.randomBytes(4).toString('hex')}`;
}

/** A sweep the collector is about to make: written before its final re-check, removed after. */
export class SweepIntent {
  private constructor(
    private readonly driver: StorageDriver,
    private readonly path: string,
    readonly until: number,
  ) {}

  static async announce(driver: StorageDriver, holder: string, keys: string[], budgetMs: number): Promise<SweepIntent> {
    const until = Date.now() + budgetMs;
    const path = `${INTENTS_DIR}/${holder.replace(/[^A-Za-z0-9._-]/g, '_')}-${crypto.randomBytes(4).toString('hex')}`;
    const body: Intent = { holder, until, keys };
    await driver.putContent(path, Buffer.from(JSON.stringify(body)));
    return new SweepIntent(driver, path, until);
  }

  /** May the collector still delete under this intent? */
  get open(): boolean {
    return Date.now() < this.until;
  }

  async close(): Promise<void> {
    await this.driver.delete(this.path).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
}

/**
 * Wait until no live sweep intent names any of `keys`. Called by writers after
 * their writes are durable and before they re-check them.
 */
export async function waitForSweeps(driver: StorageDriver, keys: Iterable<string>): Promise<void> {
  const wanted = new Set(keys);
  for (;;) {
    const names = await listOrEmpty(driver, INTENTS_DIR);
    if (!names.length) return;
    let waitUntil = 0;
    for (const name of names) {
      let intent: Intent;
      try {
        intent = JSON.parse((await driver.getContent(`${INTENTS_DIR}/${name}`)).toString('utf8'));
      } catch (e) {
        if (isNotFound(e) || e instanceof SyntaxError) continue; // finished meanwhile, or half-written by a crashed collector
        throw e;
      }
      const deadline = intent.until + CLOCK_SLACK_MS;
      if (deadline > Date.now() && intent.keys.some((k) => wanted.has(k))) waitUntil = Math.max(waitUntil, deadline);
    }
    if (!waitUntil) return;
    await sleep(Math.min(100, Math.max(1, waitUntil - Date.now())));
  }
}

/** Remove intents whose collector died (past their deadline), so writers stop reading them. */
export async function clearExpiredIntents(driver: StorageDriver): Promise<void> {
  for (const name of await listOrEmpty(driver, INTENTS_DIR)) {
    const path = `${INTENTS_DIR}/${name}`;
    try {
      const intent = JSON.parse((await driver.getContent(path)).toString('utf8')) as Intent;
      if (intent.until + CLOCK_SLACK_MS > Date.now()) continue;
    } catch (e) {
      if (isNotFound(e)) continue;
      if (!(e instanceof SyntaxError)) throw e;
    }
    await driver.delete(path).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
}

export interface LeaseBody {
  holder: string;
  until: number;
}

/**
 * The collector lease (or another at `path`, e.g. the pull-through cache's
 * lease on a blob it fetches): a key holding {holder, until}. Without a
 * conditional write in the driver interface two holders can race for it;
 * acquisition re-reads after a settle delay (at least three times its own
 * write's duration) so the later writer wins, and the holder re-checks it
 * before every sweep. Two collectors running at once stay safe (both follow
 * the intent protocol); the lease just avoids wasted work.
 */
export class Lease {
  private constructor(
    private readonly driver: StorageDriver,
    readonly holder: string,
    private readonly ttlMs: number,
    private readonly path: string,
  ) {}

  static async acquire(driver: StorageDriver, holder: string, ttlMs: number, settleMs = 250, path = LEASE_PATH): Promise<Lease | undefined> {
    const current = await readLease(driver, path);
    if (current && current.holder !== holder && current.until > Date.now()) return undefined;
    const lease = new Lease(driver, holder, ttlMs, path);
    const start = Date.now();
    await lease.write();
    await sleep(Math.max(settleMs, 3 * (Date.now() - start)));
    return (await lease.held()) ? lease : undefined;
  }

  private async write(): Promise<void> {
    const body: LeaseBody = { holder: this.holder, until: Date.now() + this.ttlMs };
    await this.driver.putContent(this.path, Buffer.from(JSON.stringify(body)));
  }

  async held(): Promise<boolean> {
    const current = await readLease(this.driver, this.path);
    return current?.holder === this.holder && current.until > Date.now();
  }

  /** Extend the lease; false when another collector has taken it. */
  async renew(): Promise<boolean> {
    if (!(await this.held())) return false;
    await this.write();
    return true;
  }

  async release(): Promise<void> {
    if (!(await this.held())) return;
    await this.driver.delete(this.path).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }
}

/** Who holds the lease at `path` and until when, if anyone wrote one. */
export async function readLease(driver: StorageDriver, path = LEASE_PATH): Promise<LeaseBody | undefined> {
  try {
    const body = JSON.parse((await driver.getContent(path)).toString('utf8')) as LeaseBody;
    return typeof body.holder === 'string' && typeof body.until === 'number' ? body : undefined;
  } catch (e) {
    if (isNotFound(e) || e instanceof SyntaxError) return undefined;
    throw e;
  }
}
