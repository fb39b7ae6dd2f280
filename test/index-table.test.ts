// The repository table keeps its orders by size, unique bytes and last push
// sorted as entries come, go and change (instead of re-sorting the whole
// table): after any sequence of changes, every page equals what sorting the
// table afresh gives.
import t from 'tap';
import { RepoTable, type RepoEntry, type SortKey } from '../storage/index/table';

/** A small deterministic generator, so a failure replays. */
function rng(seed: number) {
  let x = seed;
  return (n: number) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
}

const FIELD = { pushed: 'lastPush', size: 'logicalBytes', unique: 'uniqueBytes' } as const;

/** Every entry a walk of pages gives, following `next`. */
function walk(table: RepoTable, sort: SortKey, desc: boolean, limit: number): string[] {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = table.query({ sort, desc, cursor, limit, visible: () => true });
    out.push(...page.items.map((e) => e.name));
    cursor = page.next;
  } while (cursor);
  return out;
}

function expected(entries: RepoEntry[], sort: SortKey, desc: boolean): string[] {
  const f = sort === 'name' ? undefined : FIELD[sort];
  const sorted = [...entries].sort((a, b) => (f ? a[f] - b[f] : 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (desc ? sorted.reverse() : sorted).map((e) => e.name);
}

t.test('orders stay sorted through adds, removes and updates', async (t) => {
  const r = rng(7);
  const table = new RepoTable();
  const names = Array.from({ length: 300 }, (_, i) => `team${i % 7}/app${i}`);
  table.load(names.slice(0, 200).map((name) => ({ name, tags: 1, images: 1, lastPush: r(50), logicalBytes: r(20) * 100, uniqueBytes: r(10), summarizedAt: 1 })));
  // Build every order, then change the table under them.
  for (const sort of ['pushed', 'size', 'unique'] as const) table.query({ sort, limit: 1, visible: () => true });
  for (let step = 0; step < 2000; step++) {
    const name = names[r(names.length)];
    const op = r(10);
    if (op === 0) table.remove(name);
    else if (op === 1) table.add(name);
    else if (table.has(name)) {
      // Ties on purpose: few distinct values.
      table.update(name, op % 2 ? { logicalBytes: r(20) * 100, uniqueBytes: r(10) } : { lastPush: r(50) }, step);
    }
  }
  const entries = [...table.entries()];
  for (const sort of ['name', 'pushed', 'size', 'unique'] as const) {
    for (const desc of [false, true]) {
      t.same(walk(table, sort, desc, 7), expected(entries, sort, desc), `${sort} ${desc ? 'desc' : 'asc'}`);
    }
  }
  t.equal(table.count(undefined, () => true), entries.length, 'count');
  t.equal(table.count('APP1', (n) => n !== entries[0].name), entries.filter((e) => e.name.includes('app1') && e.name !== entries[0].name).length, 'count with a filter and rights');
  t.equal(table.query({ q: 'APP1', limit: 1000, visible: () => true }).items.length, entries.filter((e) => e.name.includes('app1')).length, 'filter ignores case');
});
