// The concurrent push/mount/GC stress loop (test/helpers/gc-stress.ts) on the filesystem.
import fs from 'node:fs';
import t from 'tap';
import { tempDir } from './helpers/berth';
import { gcStress } from './helpers/gc-stress';

t.test('pushes and mounts while GC runs repeatedly lose nothing acknowledged', async (t) => {
  const root = tempDir('berth-gc-stress-');
  const iterations = Number(process.env.GC_STRESS_ITERATIONS ?? 30);
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  await gcStress(t, {
    berth: { root },
    cliRoot: root,
    iterations,
    timeLimitMs: Number(process.env.GC_STRESS_MS ?? 40_000),
    minAcked: (3 * Math.min(iterations, 10)) / 2,
  });
});
