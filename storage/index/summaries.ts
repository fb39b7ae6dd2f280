// When the index recomputes a repository's figures: after its burst of writes
// settles, a few at a time, and spaced by what its last summary cost.
import { LRUCache } from 'lru-cache';
import type { RepoFigures, RepoTable } from './table';

/** Wait this long after a repository's last change before summarising it (a push is a burst of writes). */
const SETTLE_MS = 300;
/** Figures computed at once: few while serving, more for a command that waits for them. */
const SUMMARY_CONCURRENCY = { serving: 2, command: 8 };
/**
 * A repository's summary reads all its tags: under a stream of pushes into a
 * large repository, summarising after every burst would cost O(tags) per push.
 * The next summary of a repository waits this many times as long as its last
 * one took, so summaries take at most ~1/(1+SPACING) of the time.
 */
const SUMMARY_SPACING = 9;
/** Repositories whose last summary cost is remembered (~100 bytes each). */
const SUMMARY_COSTS = 20_000;

export class Summaries {
  private readonly queue: string[] = [];
  /** Repositories to summarise, with when each was last touched. */
  private readonly dirtyAt = new Map<string, number>();
  /** When each recently summarised repository may be summarised again. */
  private readonly nextSummary = new LRUCache<string, number>({ max: SUMMARY_COSTS });
  private working = 0;
  /** Inside a running server (fewer at once) rather than a command that waits for them. */
  serving = false;
  stopped = false;

  constructor(
    private readonly table: RepoTable,
    private readonly summarize: (repo: string, lastPush: number) => Promise<RepoFigures>,
    private readonly onError?: (what: string, e: unknown) => void,
  ) {}

  /** Repositories whose figures are still to be computed. */
  get pending(): number {
    return this.dirtyAt.size;
  }

  isPending(repo: string): boolean {
    return this.dirtyAt.has(repo);
  }

  /** Recompute the repository's figures soon. */
  touch(repo: string): void {
    if (!this.dirtyAt.has(repo)) this.queue.push(repo);
    this.dirtyAt.set(repo, Date.now());
    this.drain();
  }

  private drain(): void {
    const limit = this.serving ? SUMMARY_CONCURRENCY.serving : SUMMARY_CONCURRENCY.command;
    while (this.working < limit && this.queue.length && !this.stopped) {
      this.working++;
      void this.summarizeNext().finally(() => {
        this.working--;
        this.drain();
      });
    }
  }

  private async summarizeNext(): Promise<void> {
    const repo = this.queue.shift()!;
    const since = this.dirtyAt.get(repo);
    if (since === undefined) return;
    const wait = Math.max(since + SETTLE_MS, this.nextSummary.get(repo) ?? 0) - Date.now();
    if (wait > 0) {
      // Not yet: free the slot for other repositories and come back.
      setTimeout(() => {
        this.queue.push(repo);
        this.drain();
      }, wait).unref();
      return;
    }
    const started = this.dirtyAt.get(repo)!;
    const t0 = Date.now();
    try {
      const entry = this.table.get(repo);
      if (!entry) return void this.dirtyAt.delete(repo);
      const figures = await this.summarize(repo, entry.lastPush);
      this.table.update(repo, figures, Date.now());
    } catch (e) {
      this.onError?.(`summary of ${repo}`, e);
    }
    const now = Date.now();
    this.nextSummary.set(repo, now + (now - t0) * SUMMARY_SPACING);
    // Touched again while this ran: go round once more.
    if (this.dirtyAt.get(repo) === started) this.dirtyAt.delete(repo);
    else this.queue.push(repo);
  }
}
