// Benchmark: the same workloads against berth and CNCF distribution 2.8.2,
// started side by side on loopback on fresh storage, interleaved round by
// round (A,B then B,A, ...) so drifting machine load hits both alike; the
// table shows medians and the ratio first/second. See bench/README.md.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { procMemMiB } from '../test/helpers/process';
import { benchMixed } from './mixed';
import { BACKEND_NAME, BLOB, MiB, ONLY, ROUNDS, opt, usage } from './options';
import { log, metric, metrics, record, seconds, table, type Server } from './report';
import { benchCatalog, benchManifest, benchTags, benchWalk } from './requests';
import { BACKEND, startServer } from './servers';
import { benchConcurrentPush, benchPull, benchPush } from './transfer';

const PHASES: [string, (s: Server[]) => Promise<void>][] = [
  ['push', benchPush],
  ['pull', benchPull],
  ['manifest', benchManifest],
  ['catalog', benchCatalog],
  ['walk', benchWalk],
  ['tags', benchTags],
  ['cpush', benchConcurrentPush],
  ['mixed', benchMixed],
];

async function main() {
  const kinds = opt.targets!.split(',') as Server['kind'][];
  if (kinds.length !== 2 || kinds.some((k) => k !== 'berth' && k !== 'distribution')) {
    usage('--targets takes two of berth,distribution (e.g. distribution,distribution to test the bench itself)');
  }
  const labels = kinds[0] === kinds[1] ? kinds.map((k, i) => `${k}#${i + 1}`) : kinds;
  const servers: Awaited<ReturnType<typeof startServer>>[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < 2; i++) servers.push(await startServer(kinds[i], labels[i]));
    // The fixtures' ~20,000 small files are still being written back: flush them first,
    // or the first pushes' fsyncs queue behind them.
    const flushed = process.hrtime.bigint();
    execFileSync('sync');
    log(`backend ${BACKEND_NAME}; ${servers.map((s) => `${s.label} ${s.url} pid ${s.pid}`).join('; ')}; sync ${seconds(flushed).toFixed(1)} s; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    for (const [name, run] of PHASES) {
      if (!ONLY.has(name)) continue;
      const t0 = process.hrtime.bigint();
      await run(servers);
      log(`${name} done in ${seconds(t0).toFixed(1)} s; load ${os.loadavg()[0].toFixed(1)}`);
    }
    const rss = metric('peak RSS (VmHWM)', 'MB', { limit: { op: '<=', value: 150 } });
    for (const s of servers) record(rss, s, (procMemMiB(s.pid, 'VmHWM') * MiB) / 1e6);
    const info =
      `${BACKEND_NAME} backend, ${ROUNDS} rounds (medians), blob ${BLOB / MiB} MiB, ${new Date().toISOString()}, ` +
      `total ${((Date.now() - started) / 1000).toFixed(0)} s, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
    console.log(`\n${info}\n\n${table(servers)}\n`);
    if (opt.json) {
      const samples = metrics.map((m) => ({ name: m.name, unit: m.unit, samples: Object.fromEntries(m.samples) }));
      fs.writeFileSync(opt.json, JSON.stringify({ info, samples }, null, 2));
    }
  } catch (err) {
    for (const s of servers) console.error(s.diagnose());
    throw err;
  } finally {
    for (const s of servers) {
      await s.stop();
      s.cleanup();
    }
    await BACKEND.close?.();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
