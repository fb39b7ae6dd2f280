// The repository table: every repository with its figures, in memory, so the
// catalog and the admin API's lists cost the size of a page, not of the store.
// About 150 bytes per repository (15 MB at 100,000). Names are kept sorted;
// an order by another field is sorted once, when first asked for, and then
// kept sorted as entries change (a binary search and a move per change), so
// a sorted page stays cheap under a stream of pushes.

export interface RepoFigures {
  tags: number;
  /** Distinct tagged manifests. */
  images: number;
  /** Epoch ms of the newest tag push; 0 when unknown. */
  lastPush: number;
  /** Bytes a client pulling every tag fetches, each image counted once. */
  logicalBytes: number;
  /** Bytes of blobs no other repository uses: what deleting this one would free. */
  uniqueBytes: number;
}

export interface RepoEntry extends RepoFigures {
  name: string;
  /** Epoch ms the figures were computed; 0 when never (they read as zeros). */
  summarizedAt: number;
}

export type SortKey = 'name' | 'pushed' | 'size' | 'unique';

type FieldKey = Exclude<SortKey, 'name'>;
const FIELD: Record<FieldKey, keyof RepoFigures> = { pushed: 'lastPush', size: 'logicalBytes', unique: 'uniqueBytes' };

/** Ascending by the field, the name breaking ties. */
function compare(f: keyof RepoFigures, a: RepoEntry, b: RepoEntry): number {
  return a[f] - b[f] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** Index of the first entry not before `e` in an order sorted by compare(f). */
function position(order: RepoEntry[], f: keyof RepoFigures, e: RepoEntry): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(f, order[mid], e) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface TableQuery {
  /** Case-insensitive substring of the name. */
  q?: string;
  sort?: SortKey;
  desc?: boolean;
  /** Opaque position from a previous page's `next`. */
  cursor?: string;
  limit: number;
  /** May the caller see this repository? */
  visible: (name: string) => boolean;
}

export interface TablePage {
  items: RepoEntry[];
  next?: string;
}

function lowerBound(a: string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class RepoTable {
  private readonly byName = new Map<string, RepoEntry>();
  private names: string[] = [];
  /** Orders asked for so far, kept sorted from then on. */
  private readonly orders = new Map<FieldKey, RepoEntry[]>();
  private changedAt = 0;
  private members = 0;

  get size(): number {
    return this.byName.size;
  }

  /** Epoch ms of the last change to any entry. */
  get lastChange(): number {
    return this.changedAt;
  }

  /** Changes with every add and remove (not with figures): what a count of names depends on. */
  get membership(): number {
    return this.members;
  }

  get(name: string): RepoEntry | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Add a repository (figures unknown until summarised); the existing entry when present. */
  add(name: string): RepoEntry {
    let e = this.byName.get(name);
    if (e) return e;
    e = { name, tags: 0, images: 0, lastPush: 0, logicalBytes: 0, uniqueBytes: 0, summarizedAt: 0 };
    this.byName.set(name, e);
    this.changedAt = Date.now();
    this.members++;
    const i = lowerBound(this.names, name);
    this.names.splice(i, 0, name);
    for (const [sort, order] of this.orders) order.splice(position(order, FIELD[sort], e), 0, e);
    return e;
  }

  remove(name: string): boolean {
    const e = this.byName.get(name);
    if (!e) return false;
    this.byName.delete(name);
    this.changedAt = Date.now();
    this.members++;
    const i = lowerBound(this.names, name);
    if (this.names[i] === name) this.names.splice(i, 1);
    for (const [sort, order] of this.orders) order.splice(position(order, FIELD[sort], e), 1);
    return true;
  }

  update(name: string, figures: Partial<RepoFigures>, summarizedAt?: number): void {
    const e = this.byName.get(name);
    if (!e) return;
    // Out of each order whose field changes, then back in at its new place.
    const moving = [...this.orders].filter(([sort]) => {
      const v = figures[FIELD[sort]];
      return v !== undefined && v !== e[FIELD[sort]];
    });
    for (const [sort, order] of moving) order.splice(position(order, FIELD[sort], e), 1);
    Object.assign(e, figures);
    this.changedAt = Date.now();
    if (summarizedAt !== undefined) e.summarizedAt = summarizedAt;
    for (const [sort, order] of moving) order.splice(position(order, FIELD[sort], e), 0, e);
  }

  /** Replace the whole content (a snapshot or a walk of the store). */
  load(entries: RepoEntry[]): void {
    this.byName.clear();
    for (const e of entries) this.byName.set(e.name, e);
    this.names = [...this.byName.keys()].sort();
    this.orders.clear();
    this.changedAt = Date.now();
  }

  entries(): IterableIterator<RepoEntry> {
    return this.byName.values();
  }

  /** The catalog: up to n visible names after `last`, in name order. */
  catalogPage(last: string | undefined, n: number, visible: (name: string) => boolean): { items: string[]; more: boolean } {
    const items: string[] = [];
    let i = last === undefined ? 0 : lowerBound(this.names, last);
    if (last !== undefined && this.names[i] === last) i++;
    for (; i < this.names.length; i++) {
      const name = this.names[i];
      if (!visible(name)) continue;
      if (items.length === n) return { items, more: true };
      items.push(name);
    }
    return { items, more: false };
  }

  query(q: TableQuery): TablePage {
    const named = nameMatcher(q.q);
    const sort = q.sort ?? 'name';
    const order = sort === 'name' ? undefined : this.order(sort);
    const len = order ? order.length : this.names.length;
    // In name order the filter reads the name before the entry is looked up.
    const nameAt = order ? (i: number) => order[i].name : (i: number) => this.names[i];
    const entryAt = order ? (i: number) => order[i] : (i: number) => this.byName.get(this.names[i])!;
    const index = (k: number) => (q.desc ? len - 1 - k : k);
    let k = q.cursor ? this.after(sort, len, entryAt, q.cursor, Boolean(q.desc)) : 0;
    const items: RepoEntry[] = [];
    let next: string | undefined;
    for (; k < len; k++) {
      const name = nameAt(index(k));
      if (!named(name) || !q.visible(name)) continue;
      if (items.length === q.limit) {
        next = cursorOf(sort, items[items.length - 1]);
        break;
      }
      items.push(entryAt(index(k)));
    }
    return { items, next };
  }

  /** How many names match `q` and are visible: a walk of every name (callers cache it, see `membership`). */
  count(q: string | undefined, visible: (name: string) => boolean): number {
    const named = nameMatcher(q);
    let n = 0;
    for (const name of this.names) if (named(name) && visible(name)) n++;
    return n;
  }

  /** Entries in `sort` order, ascending, the name breaking ties. */
  private order(sort: FieldKey): RepoEntry[] {
    let order = this.orders.get(sort);
    if (!order) {
      const f = FIELD[sort];
      order = [...this.byName.values()].sort((a, b) => compare(f, a, b));
      this.orders.set(sort, order);
    }
    return order;
  }

  /** Index (in the walking direction) of the first entry after the cursor's. */
  private after(sort: SortKey, len: number, get: (i: number) => RepoEntry, cursor: string, desc: boolean): number {
    const sep = cursor.indexOf('|');
    const value = sort === 'name' ? 0 : Number(cursor.slice(0, sep));
    const name = sort === 'name' ? cursor : cursor.slice(sep + 1);
    const f = sort === 'name' ? undefined : FIELD[sort];
    const cmp = (e: RepoEntry) => (f ? e[f] - value : 0) || (e.name < name ? -1 : e.name > name ? 1 : 0);
    // The first ascending index whose entry is past the cursor (ascending), or
    // at or past it (descending: the walk resumes just below that index).
    const strict = !desc;
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = cmp(get(mid));
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return desc ? len - lo : lo;
  }
}

/** Names are lower case by the grammar: the needle alone needs folding. */
function nameMatcher(q: string | undefined): (name: string) => boolean {
  const needle = q?.toLowerCase();
  return needle ? (name) => name.includes(needle) : () => true;
}

function cursorOf(sort: SortKey, e: RepoEntry): string {
  return sort === 'name' ? e.name : `${e[FIELD[sort]]}|${e.name}`;
}
