// Keeps the old generation's garbage within a byte budget.
//
// berth runs with --heap-growing-percent=300 (README, Memory): V8 counts a
// transfer's buffers against the old generation's limit, and a tighter limit
// means a full collection every 15–25 MB pushed. But under many concurrent
// small requests (the mixed load: 64 clients pushing, pulling, listing),
// request objects outlive young collections, and the old generation then
// fills with garbage up to four times its live size before V8 collects it:
// RSS grew 10–20 MB a minute with a live heap of ~30 MB. So, twice a second,
// when the old generation holds more than what was live after the last
// collection run here plus max(24 MB, half of that), one full collection runs
// here (a few tens of ms for a heap this size).
import v8 from 'node:v8';
import vm from 'node:vm';

const MiB = 1024 * 1024;
/** Garbage allowed on top of the live old generation (or half the live size, if more). */
const SLACK = 24 * MiB;
/** No collection below this: a store's indexes and caches are live data, not garbage. */
const FLOOR = 40 * MiB;
const OLD = new Set(['old_space', 'large_object_space']);

function oldGenerationBytes(): number {
  let n = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (OLD.has(s.space_name)) n += s.space_used_size;
  return n;
}

/** Start watching (an unref'd timer: it never keeps the process alive). */
export function boundOldGeneration(everyMs = 500): void {
  // gc() without starting node with --expose-gc (which would have to match in the bin, npm start and the image).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  let threshold = FLOOR;
  setInterval(() => {
    if (oldGenerationBytes() <= threshold) return;
    gc();
    const live = oldGenerationBytes();
    threshold = Math.max(FLOOR, live + Math.max(SLACK, live / 2));
  }, everyMs).unref();
}
