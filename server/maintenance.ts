// Store maintenance wired to config and the command line: `berth gc`,
// `berth verify`, `berth du` and the scheduled GC inside `serve`. The work
// itself is in storage/gc.ts, verify.ts, du.ts.
import type { StorageDriver } from '../storage/driver';
import { diskUsage, type Usage } from '../storage/du';
import { createDriver } from '../storage/factory';
import { collectGarbage, type GcOptions, type GcReport, type RetentionPolicy } from '../storage/gc';
import { Lease, newHolderId } from '../storage/lease';
import { rebuildIndexes } from '../storage/index/rebuild';
import { ContentStore } from '../storage/store';
import { verifyStore } from '../storage/verify';
import { cachedRepositories, ConfigError, formatDuration, parseDuration, type Config } from './config';
import type { Logger } from './log';
import type { Metrics } from './metrics';
import { createProgress, formatBytes } from './progress';

/** The retention policies, or a ConfigError listing every problem in them. */
export function retentionPolicies(config: Config): RetentionPolicy[] {
  const errors: string[] = [];
  const policies = (config.berth.gc.retention ?? []).map((p, i) => {
    const where = `berth.gc.retention[${i}]`;
    if (!p.repository) errors.push(`${where}.repository is required (a name pattern, e.g. "team/*")`);
    if (p.keeptags !== undefined) {
      try {
        new RegExp(p.keeptags);
      } catch (e) {
        errors.push(`${where}.keeptags is not a regular expression: ${(e as Error).message}`);
      }
    }
    if (p.keeplatest === undefined && p.keeptags === undefined && p.untaggedage === undefined) {
      errors.push(`${where} sets none of keeplatest, keeptags, untaggedage`);
    }
    return { repository: p.repository ?? '', keeplatest: p.keeplatest, keeptags: p.keeptags, untaggedage: p.untaggedage };
  });
  if (errors.length) throw new ConfigError(errors);
  return policies;
}

export class LeaseHeldError extends Error {
  constructor() {
    super('another garbage collector holds the lease; try again later');
    this.name = 'LeaseHeldError';
  }
}

/** Work done under the collector's lease before it marks (the pull-through cache's expiry, which serve.ts passes in). */
export type BeforeGc = (holder: string) => Promise<void>;

/** One GC run under the store's lease (a dry run needs none), renewed while it runs. */
export async function runGc(driver: StorageDriver, config: Config, opts: Omit<GcOptions, 'lease' | 'holder'>, before?: BeforeGc): Promise<GcReport> {
  const gc = config.berth.gc;
  if (opts.dryRun) return collectGarbage(driver, opts);
  const holder = newHolderId();
  const lease = await Lease.acquire(driver, holder, gc.leasettl);
  if (!lease) throw new LeaseHeldError();
  const renew = setInterval(() => lease.renew().catch(() => undefined), Math.max(1000, gc.leasettl / 3));
  try {
    await before?.(holder);
    return await collectGarbage(driver, { ...opts, lease, holder });
  } finally {
    clearInterval(renew);
    await lease.release().catch(() => undefined);
  }
}

export function gcOptions(config: Config): Omit<GcOptions, 'lease' | 'holder'> {
  const gc = config.berth.gc;
  return {
    dryRun: gc.dryrun,
    deleteUntagged: gc.deleteuntagged,
    minAgeMs: gc.minage,
    retention: retentionPolicies(config),
    concurrency: gc.concurrency,
    sweepBudgetMs: gc.sweepbudget,
  };
}

export function summarizeGc(r: GcReport): string {
  const verb = r.dryRun ? 'would free' : 'freed';
  return (
    `gc: ${verb} ${formatBytes(r.bytesFreed)} in ${r.blobsDeleted} blobs; ` +
    `${r.manifestsDeleted} manifests, ${r.tagsDeleted} tags, ${r.layerLinksDeleted} layer links ${r.dryRun ? 'would go' : 'removed'}; ` +
    `kept ${r.manifestsKept} manifests, ${r.blobsKept} blobs in ${r.repositories} repositories` +
    (r.uploads ? `; ${r.uploads.purged} stale uploads ${r.dryRun ? 'to purge' : 'purged'}` : '') +
    (r.rescued ? `; ${r.rescued} spared (in use again)` : '') +
    heldBack(r) +
    (r.incomplete ? '; INCOMPLETE (sweep budget exhausted)' : '') +
    ` (${(r.totalMs / 1000).toFixed(1)}s)`
  );
}

/** "; 3 layer links, 2 blobs (1.2 KiB) younger than --min-age 1h kept", or "" when min-age held nothing back. */
function heldBack(r: GcReport): string {
  const y = r.young;
  const n = (count: number, what: string) => (count ? [`${count} ${what}${count === 1 ? '' : 's'}`] : []);
  const parts = [...n(y.tags, 'tag'), ...n(y.manifests, 'manifest'), ...n(y.layerLinks, 'layer link'), ...n(y.blobs, 'blob')];
  if (y.blobs) parts[parts.length - 1] += ` (${formatBytes(y.blobBytes)})`;
  return parts.length ? `; ${parts.join(', ')} younger than --min-age ${formatDuration(r.minAgeMs)} kept` : '';
}

// ---- command line -------------------------------------------------------

export interface Flags {
  values: Record<string, string>;
  switches: Set<string>;
  /** Arguments that are not flags, when the command takes them. */
  positionals: string[];
}

/** Parse `--name value` and `--switch` flags (and, with `positionals`, bare arguments); anything else is a usage error. */
export function parseFlags(args: string[], withValue: string[], switches: string[], positionals = false): Flags {
  const out: Flags = { values: {}, switches: new Set(), positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split(/=(.*)/s, 2);
    if (positionals && !args[i].startsWith('-')) {
      out.positionals.push(args[i]);
    } else if (withValue.includes(name)) {
      const v = inline ?? args[++i];
      if (v === undefined) throw new ConfigError(`${name} needs a value`);
      out.values[name] = v;
    } else if (switches.includes(name) && inline === undefined) {
      out.switches.add(name);
    } else {
      throw new ConfigError(`unknown option ${args[i]}`);
    }
  }
  return out;
}

export type Load = (file: string | undefined) => Config;

/** The config's storage driver for the length of fn, closed after. */
export async function withDriver<T>(config: Config, fn: (driver: StorageDriver) => Promise<T>): Promise<T> {
  const driver = createDriver(config.storage);
  try {
    return await fn(driver);
  } finally {
    await driver.close();
  }
}

export async function cmdGc(args: string[], load: Load): Promise<number> {
  const flags = parseFlags(args, ['--config', '--min-age'], ['--dry-run', '--delete-untagged', '--json']);
  const config = load(flags.values['--config']);
  const opts = gcOptions(config);
  if (flags.switches.has('--dry-run')) opts.dryRun = true;
  if (flags.switches.has('--delete-untagged')) opts.deleteUntagged = true;
  if (flags.values['--min-age'] !== undefined) opts.minAgeMs = parseDuration(flags.values['--min-age'], '--min-age');
  const purge = config.storage.maintenance.uploadpurging;
  if (purge.enabled) opts.purge = { olderThanMs: purge.age, dryRun: purge.dryrun || Boolean(opts.dryRun) };
  const progress = createProgress();
  opts.onProgress = (p) => progress.update(p.phase, p.done, p.total, p.unit);
  let report: GcReport;
  try {
    // The index's markers follow what the run removes (registries serving the store learn it from the feed).
    report = await withDriver(config, (driver) => {
      const index = new ContentStore(driver).index;
      return runGc(driver, config, { ...opts, onSwept: (repos) => index.swept(repos) });
    });
  } catch (e) {
    progress.done();
    if (e instanceof LeaseHeldError) {
      process.stderr.write(`berth gc: ${e.message}\n`);
      return 3;
    }
    throw e;
  }
  progress.done();
  if (flags.switches.has('--json')) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  if (report.dryRun) {
    const list = (title: string, items: string[]) => {
      if (!items.length) return;
      process.stdout.write(`${title} (${items.length}):\n`);
      for (const x of items) process.stdout.write(`  ${x}\n`);
    };
    list('tags that would be removed', report.removed.tags);
    list('manifests that would be removed', report.removed.manifests);
    list('layer links that would be removed', report.removed.layerLinks);
    list('blobs that would be removed', report.removed.blobs);
  }
  for (const p of report.phases) process.stdout.write(`  ${p.name.padEnd(20)} ${(p.ms / 1000).toFixed(2)}s\n`);
  process.stdout.write(summarizeGc(report) + '\n');
  return 0;
}

export async function cmdVerify(args: string[], load: Load): Promise<number> {
  const flags = parseFlags(args, ['--config'], ['--repair', '--json']);
  const config = load(flags.values['--config']);
  const progress = createProgress();
  const repair = flags.switches.has('--repair');
  const concurrency = config.berth.gc.concurrency;
  const { report, indexes } = await withDriver(config, async (driver) => {
    const report = await verifyStore(driver, { repair, lazy: cachedRepositories(config), concurrency, onProgress: (phase, d, t, unit) => progress.update(phase, d, t, unit) });
    // The admin API's and the UI's indexes (storage/INDEX.md) are derived from the layout: derive them again.
    const indexes = repair ? await rebuildIndexes(driver, { concurrency, onProgress: (d, t) => progress.update('indexes', d, t, 'repositories') }) : undefined;
    return { report, indexes };
  });
  progress.done();
  const unrepaired = report.problems.filter((p) => !p.repaired).length;
  if (flags.switches.has('--json')) {
    process.stdout.write(JSON.stringify({ ...report, indexes }, null, 2) + '\n');
  } else {
    let repo: string | undefined = '\0';
    for (const p of report.problems) {
      if (p.repository !== repo) {
        repo = p.repository;
        process.stdout.write(`${repo ?? '(blob store)'}:\n`);
      }
      process.stdout.write(`  ${p.kind.padEnd(16)} ${p.image ? `${p.image} ` : ''}${p.digest}: ${p.detail}${p.action ? ` [${p.action}]` : ''}\n`);
    }
    if (report.repush.length) {
      // A corrupt blob still in place would make a client skip uploading it: repair first.
      process.stdout.write(`images to push again, the store no longer holds all of their content${repair ? '' : ' (after verify --repair removed what is corrupt)'}:\n`);
      for (const r of report.repush) process.stdout.write(`  ${r.image}: ${r.reasons.join('; ')}\n`);
    }
    process.stdout.write(
      `verify: ${report.blobs} blobs (${formatBytes(report.bytesHashed)}) re-hashed, ${report.manifests} manifests in ${report.repositories} repositories; ` +
        `${report.problems.length} problems${report.repaired ? `, ${report.repaired} repaired` : ''}` +
        `${report.repush.length ? `; ${report.repush.length} image${report.repush.length === 1 ? '' : 's'} to push again` : ''} (${(report.ms / 1000).toFixed(1)}s)\n`,
    );
    if (indexes) process.stdout.write(`indexes rebuilt: ${indexes.markers} markers written, ${indexes.stale} stale removed in ${indexes.repositories} repositories (${(indexes.ms / 1000).toFixed(1)}s)\n`);
  }
  return unrepaired ? 1 : 0;
}

export function usageTable(u: Usage): string {
  const rows = u.repositories.map((r) => [r.repository, String(r.images), formatBytes(r.logicalBytes), formatBytes(r.uniqueBytes)]);
  const head = ['REPOSITORY', 'IMAGES', 'LOGICAL', 'UNIQUE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ') + '\n';
  const blobs = (n: number) => `${n} blob${n === 1 ? '' : 's'}`;
  const unique = u.repositories.reduce((n, r) => n + r.uniqueBytes, 0);
  return (
    line(head) +
    rows.map(line).join('') +
    'LOGICAL: tagged images as clients see them. UNIQUE: bytes only that repository uses (deleting it frees them).\n' +
    `stored ${formatBytes(u.storedBytes)} = ${formatBytes(unique)} unique + ${formatBytes(u.sharedBytes)} shared by 2+ repositories (${blobs(u.sharedBlobs)})` +
    ` + ${formatBytes(u.unreferencedBytes)} unreferenced (${blobs(u.unreferencedBlobs)}, gc removes them)\n` +
    `du: ${formatBytes(u.logicalBytes)} as clients see it, ${formatBytes(u.storedBytes)} stored in ${u.blobs} blobs; dedup ratio ${u.dedupRatio.toFixed(2)} (${(u.ms / 1000).toFixed(1)}s)\n`
  );
}

export async function cmdDu(args: string[], load: Load): Promise<number> {
  const flags = parseFlags(args, ['--config'], ['--json']);
  const config = load(flags.values['--config']);
  const progress = createProgress();
  const usage = await withDriver(config, (driver) => diskUsage(driver, { concurrency: config.berth.gc.concurrency, onProgress: (d, t) => progress.update('repositories', d, t, 'repositories') }));
  progress.done();
  process.stdout.write(flags.switches.has('--json') ? JSON.stringify(usage, null, 2) + '\n' : usageTable(usage));
  return 0;
}

// ---- inside serve -------------------------------------------------------

/**
 * Scheduled GC: every replica tries at each interval; the lease lets one run.
 * Returns a stop function. A run cut short by shutdown is safe: its intents
 * expire and the lease times out.
 */
export function scheduleGc(driver: StorageDriver, config: Config, logger: Logger, metrics?: Metrics, before?: BeforeGc, onSwept?: GcOptions['onSwept']): () => void {
  const opts = { ...gcOptions(config), onSwept };
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = runGc(driver, config, opts, before)
      .then(
        (r) => {
          logger.info('gc', { summary: summarizeGc(r), ...r, removed: undefined });
          if (!r.dryRun) metrics?.gcRun({ ok: true, bytesFreed: r.bytesFreed, blobsDeleted: r.blobsDeleted, seconds: r.totalMs / 1000 });
        },
        (e) => {
          // Another replica holding the lease is not a run of ours.
          if (e instanceof LeaseHeldError) return logger.debug('gc skipped', { reason: e.message });
          logger.warn('gc failed', { error: String(e) });
          metrics?.gcRun({ ok: false });
        },
      )
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, config.berth.gc.interval);
  timer.unref();
  return () => clearInterval(timer);
}

