// The inventory commands: `berth ls`, `berth rm`, `berth images`. They work
// on the store named by the config, as gc and du do, with the same queries as
// the admin API (admin/tags.ts, images.ts, deletion.ts) over the same index.
import readline from 'node:readline/promises';
import { UsageError } from '../auth/cli';
import type { Config } from '../server/config';
import { parseFlags, withDriver, type Load } from '../server/maintenance';
import { createProgress, formatBytes } from '../server/progress';
import { parseDigest } from '../storage/digest';
import { RegistryError } from '../storage/errors';
import type { SortKey } from '../storage/index/table';
import { ContentStore } from '../storage/store';
import { deletionPlan } from './deletion';
import { blobImages } from './images';
import { tagRows } from './tags';

function withStore<T>(config: Config, fn: (store: ContentStore) => Promise<T>): Promise<T> {
  return withDriver(config, async (driver) => {
    const store = new ContentStore(driver, { deleteEnabled: config.storage.delete.enabled, index: { readOnly: config.storage.maintenance.readonly.enabled } });
    try {
      return await fn(store);
    } finally {
      await store.index.stop();
    }
  });
}

/** Columns padded to their widest cell; numbers right-aligned. */
function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const right = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells.map((r) => r.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}

const minute = (iso: string | null) => (iso ? iso.slice(0, 16).replace('T', ' ') : '-');
const out = (s: string) => process.stdout.write(s);
const SORTS: SortKey[] = ['name', 'pushed', 'size', 'unique'];

export async function cmdLs(args: string[], load: Load): Promise<number> {
  const f = parseFlags(args, ['--config', '--sort'], ['--json'], true);
  if (f.positionals.length > 1) throw new UsageError('ls takes at most one repository');
  const sort = (f.values['--sort'] ?? 'name') as SortKey;
  if (!SORTS.includes(sort)) throw new UsageError(`--sort must be one of ${SORTS.join(', ')}`);
  const json = f.switches.has('--json');
  return withStore(load(f.values['--config']), async (store) => {
    const [repo] = f.positionals;
    if (repo) return lsRepository(store, repo, json);
    const progress = createProgress();
    await store.index.open();
    await store.index.summarized((done, total) => progress.update('figures', done, total, 'repositories'));
    progress.done();
    const rows = store.index.table.query({ sort, desc: sort !== 'name', limit: Number.MAX_SAFE_INTEGER, visible: () => true }).items;
    const iso = (ms: number) => (ms ? new Date(ms).toISOString() : null);
    if (json) {
      out(JSON.stringify(rows.map(({ name, tags, images, lastPush, logicalBytes, uniqueBytes }) => ({ name, tags, images, lastPush: iso(lastPush), logicalBytes, uniqueBytes })), null, 2) + '\n');
      return 0;
    }
    out(table(['REPOSITORY', 'TAGS', 'IMAGES', 'LAST PUSH', 'LOGICAL', 'UNIQUE'], rows.map((e) => [e.name, e.tags, e.images, minute(iso(e.lastPush)), formatBytes(e.logicalBytes), formatBytes(e.uniqueBytes)])));
    if (!store.index.complete) process.stderr.write('berth: this store has no complete indexes yet (berth serve builds them, or berth verify --repair): UNIQUE may count shared bytes\n');
    return 0;
  });
}

async function lsRepository(store: ContentStore, repo: string, json: boolean): Promise<number> {
  const rows = [];
  let cursor: string | undefined;
  do {
    const page = await tagRows(store, repo, cursor, 1000);
    rows.push(...page.tags);
    cursor = page.next;
  } while (cursor);
  if (json) {
    out(JSON.stringify(rows, null, 2) + '\n');
    return 0;
  }
  const platforms = (p: { os: string; architecture: string; variant?: string }[]) => p.map((x) => `${x.os}/${x.architecture}${x.variant ? `/${x.variant}` : ''}`).join(',') || '-';
  out(table(['TAG', 'DIGEST', 'KIND', 'PLATFORMS', 'SIZE', 'PUSHED', 'BY'], rows.map((r) => [r.name, r.digest.slice(0, 19), r.kind, platforms(r.platforms), formatBytes(r.size), minute(r.pushedAt), r.pushedBy ?? '-'])));
  return 0;
}

/** REPO:TAG or REPO@DIGEST; a tag holds no ':' or '/', so a ':' after the last '/' starts it. */
function parseRef(ref: string): { repo: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at > 0) return { repo: ref.slice(0, at), digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > 0 && colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  throw new UsageError(`"${ref}" names no tag or digest: give REPO:TAG, REPO@DIGEST or --repository REPO`);
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new UsageError('standard input is not a terminal: pass --yes to delete without asking');
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export async function cmdRm(args: string[], load: Load): Promise<number> {
  const f = parseFlags(args, ['--config', '--repository'], ['--yes', '--json'], true);
  const repository = f.values['--repository'];
  if ((repository ? 1 : 0) + f.positionals.length !== 1) throw new UsageError('give one of REPO:TAG, REPO@DIGEST or --repository REPO');
  const target = repository ? { repo: repository } : parseRef(f.positionals[0]);
  return withStore(load(f.values['--config']), async (store) => {
    if (!store.deleteEnabled) throw new UsageError('deletes are disabled in this config (storage.delete.enabled)');
    await store.index.open();
    const plan = await deletionPlan(store, target.repo, { tag: target.tag, digest: target.digest });
    const what = target.tag !== undefined ? `tag ${target.repo}:${target.tag}` : target.digest ? `image ${target.repo}@${target.digest}` : `repository ${target.repo}`;
    const untagged = plan.untagged.length ? `; leaves ${plan.untagged.length} image(s) untagged` : '';
    process.stderr.write(
      `${what}: removes ${plan.tags.length} tag(s)${plan.tags.length ? ` (${plan.tags.join(', ')})` : ''} and ${plan.manifests.length} manifest(s)${untagged}; ` +
        `garbage collection then frees ${formatBytes(plan.freeableBytes)}${untagged ? ' (with --delete-untagged)' : ''}\n`,
    );
    if (!f.switches.has('--yes') && !(await confirm(`Remove ${what}?`))) {
      process.stderr.write('nothing removed\n');
      return 1;
    }
    if (target.tag !== undefined || target.digest) await store.deleteManifest(target.repo, target.digest ?? target.tag!);
    else await store.deleteRepository(target.repo);
    if (f.switches.has('--json')) out(JSON.stringify({ removed: what, ...plan }, null, 2) + '\n');
    else process.stderr.write(`removed ${what}\n`);
    return 0;
  });
}

export async function cmdImages(args: string[], load: Load): Promise<number> {
  const f = parseFlags(args, ['--config', '--containing'], ['--json']);
  const containing = f.values['--containing'];
  if (!containing) throw new UsageError('give --containing DIGEST');
  let d: ReturnType<typeof parseDigest>;
  try {
    d = parseDigest(containing);
  } catch (e) {
    throw new UsageError(`--containing: ${(e as Error).message} "${containing}"`);
  }
  return withStore(load(f.values['--config']), async (store) => {
    await store.index.open();
    if (!store.index.complete) throw new UsageError('this store has no complete indexes yet: start berth serve on it once, or run berth verify --repair');
    const images = [];
    let cursor: string | undefined;
    let repositories = 0;
    try {
      do {
        const page = await blobImages(store, d, () => true, cursor, 1000);
        images.push(...page.images);
        repositories = page.repositories;
        cursor = page.next;
      } while (cursor);
    } catch (e) {
      if (!(e instanceof RegistryError && e.code === 'BLOB_UNKNOWN')) throw e;
      process.stderr.write(`no repository uses ${d.value}\n`);
      return 1;
    }
    if (f.switches.has('--json')) out(JSON.stringify({ digest: d.value, repositories, images }, null, 2) + '\n');
    else out(table(['REPOSITORY', 'IMAGE', 'TAGS'], images.map((i) => [i.repository, i.digest.slice(0, 19), i.tags.join(',') || '-'])));
    return 0;
  });
}
