// The index's timings (berth.index.* and berth.usage.cachettl in the config)
// and where its background work reports.
export interface IndexOptions {
  /** How often the change feed is read, ms. */
  pollMs: number;
  /** How often the lease holder writes a snapshot of the table, ms. */
  snapshotMs: number;
  /** How long feed entries are kept, ms; a replica away longer re-reads the store. */
  feedRetentionMs: number;
  /** How often the repository list is checked against the store, ms (for repositories another program writes). */
  reconcileMs: number;
  /** How often the lease holder recomputes store-wide usage, ms. */
  usageMs: number;
  /** storage.maintenance.readonly: no snapshots, pruning or rebuilds. */
  readOnly?: boolean;
  /** Errors of background work (they never fail a request). */
  onError?: (what: string, e: unknown) => void;
  onInfo?: (what: string, fields: Record<string, unknown>) => void;
}

export const defaultIndexOptions: IndexOptions = { pollMs: 1000, snapshotMs: 5 * 60_000, feedRetentionMs: 30 * 60_000, reconcileMs: 60_000, usageMs: 5 * 60_000 };
