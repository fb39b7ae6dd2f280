// Bounded parallelism for store-wide jobs (GC, verify, du): enough requests in
// flight to hide a high-latency backend, never an unbounded fan-out.
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  const worker = async () => {
    for (let n = it.next(); !n.done; n = it.next()) await fn(n.value);
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}

/** Map with bounded parallelism, keeping order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  await forEachLimit(items.keys(), limit, async (i) => {
    out[i] = await fn(items[i]);
  });
  return out;
}
