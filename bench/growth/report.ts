// The growth curve's tables: per workload and store size, the median over
// runs of each run's p50 (or p99, or storage operations per request) with
// the range over runs, berth beside distribution, and berth's growth from the
// smallest store to the largest.
import type { FixtureShape } from '../../test/helpers/layout-fixture';
import { fmt, markdownTable, median, percentile } from '../stats';
import type { Kind, StartTimes } from './stores';
import type { RunSample, Workload } from './workloads';

export interface Results {
  backend: string;
  sizes: number[];
  startedAt: string;
  finishedAt?: string;
  /** 1-minute load average when each server started. */
  load: number[];
  stores: Record<number, { shape: FixtureShape; generated?: { files: number; seconds: number }; firstStart?: StartTimes & { rss: { rss: number; hwm: number } } }>;
  runs: {
    size: number;
    kind: Kind;
    round: number;
    times: StartTimes;
    rss: { rss: number; hwm: number };
    /** CPU seconds per second while idle after the workloads. */
    idleCpu?: number;
    workloads: Record<string, RunSample>;
  }[];
}

/** A figure for a table; "–" for one that is missing (NaN, Infinity). */
const num = (v: number) => (Number.isFinite(v) ? fmt(v) : '–');

/** "median (min–max)" of per-run values; "–" when there are none. */
function cell(values: number[]): string {
  const v = values.filter(Number.isFinite);
  if (!v.length) return '–';
  if (v.length === 1) return num(v[0]);
  return `${num(median(v))} (${num(Math.min(...v))}–${num(Math.max(...v))})`;
}

const sizeLabel = (n: number) => n.toLocaleString('en-US');

export function growthReport(r: Results, workloads: Workload[]): string {
  const kinds: Kind[] = ['berth', 'distribution'].filter((k) => r.runs.some((x) => x.kind === k)) as Kind[];
  const sizes = r.sizes.filter((s) => r.runs.some((x) => x.size === s));
  const runsOf = (size: number, kind: Kind) => r.runs.filter((x) => x.size === size && x.kind === kind);
  const header = ['', ...sizes.flatMap((s) => kinds.map((k) => `${sizeLabel(s)} ${k === 'berth' ? 'berth' : 'distr.'}`)), ...(sizes.length > 1 ? [`berth ${sizeLabel(sizes.at(-1)!)}/${sizeLabel(sizes[0])}`] : [])];
  const table = (title: string, value: (s: RunSample) => number) => {
    const rows = [header];
    for (const w of workloads) {
      const row = [w.name];
      const medians: number[] = [];
      for (const size of sizes) {
        for (const kind of kinds) {
          const values = runsOf(size, kind).map((x) => x.workloads[w.name]).filter(Boolean).map(value);
          const note = kind === 'distribution' && values.length ? statusNote(w, runsOf(size, kind)[0].workloads[w.name]) : '';
          row.push(w.kinds.includes(kind) ? note || cell(values) : 'n/a');
          if (kind === 'berth') medians.push(values.length ? median(values) : NaN);
        }
      }
      if (sizes.length > 1) row.push(Number.isFinite(medians[0]) ? `${(medians.at(-1)! / medians[0]).toFixed(2)}×` : '');
      rows.push(row);
    }
    return `${title}\n\n${markdownTable(rows)}`;
  };
  const out: string[] = [];
  const loads = r.load.length ? `load average ${num(Math.min(...r.load))}–${num(Math.max(...r.load))} at server starts` : '';
  out.push(`Growth curve, ${r.backend}, ${r.startedAt} to ${r.finishedAt ?? '?'}, ${loads}`);
  out.push(table('Time per request, ms: median over runs of each run\'s p50 (range over runs)', (s) => percentile(s.ms, 50)));
  out.push(table('Time per request, ms: median over runs of each run\'s p99 (range over runs)', (s) => percentile(s.ms, 99)));
  out.push(table('Storage operations per request (driver calls, background work included): median over runs', (s) => s.opsPerSample));
  out.push(startupTable(r, sizes, kinds));
  for (const size of sizes) {
    const g = r.stores[size]?.generated;
    if (g) out.push(`Store of ${sizeLabel(size)} repositories (${sizeLabel(r.stores[size].shape.tags)} tags): ${sizeLabel(g.files)} files written in ${num(g.seconds)} s`);
  }
  return out.join('\n\n');
}

/** distribution answers some workloads with a different status (no referrers API, no mount without `from`). */
function statusNote(w: Workload, s: RunSample | undefined): string {
  if (!s) return '';
  if (w.ok.distribution[0] === 404) return 'n/a (404)';
  return '';
}

function startupTable(r: Results, sizes: number[], kinds: Kind[]): string {
  const header = ['', ...sizes.map(sizeLabel)];
  const rows = [header];
  const first = (f: (t: StartTimes & { rss: { rss: number; hwm: number } }) => number | undefined) =>
    sizes.map((s) => {
      const t = r.stores[s]?.firstStart;
      const v = t ? f(t) : undefined;
      return v === undefined ? '–' : num(v);
    });
  const runs = (kind: Kind, f: (x: Results['runs'][0]) => number | undefined) =>
    sizes.map((s) => cell(r.runs.filter((x) => x.size === s && x.kind === kind).map((x) => f(x) ?? NaN)));
  if (kinds.includes('berth')) {
    rows.push(['berth first start over the store: serving, s', ...first((t) => t.serving)]);
    rows.push(['  … repository table loaded (/readyz 200), s', ...first((t) => t.ready)]);
    rows.push(['  … markers rebuilt, figures computed (warm), s', ...first((t) => t.warm)]);
    rows.push(['berth start from its snapshot: serving, s', ...runs('berth', (x) => x.times.serving)]);
    rows.push(['  … /readyz 200, s', ...runs('berth', (x) => x.times.ready)]);
    rows.push(['  … warm, s', ...runs('berth', (x) => x.times.warm)]);
  }
  if (kinds.includes('distribution')) rows.push(['distribution start: serving, s', ...runs('distribution', (x) => x.times.serving)]);
  for (const kind of kinds) {
    rows.push([`${kind} RSS after the workloads, MiB`, ...runs(kind, (x) => x.rss.rss)]);
    rows.push([`${kind} peak RSS (VmHWM), MiB`, ...runs(kind, (x) => x.rss.hwm)]);
  }
  if (kinds.includes('berth')) rows.push(['berth peak RSS during the first start, MiB', ...first((t) => t.rss.hwm)]);
  for (const kind of kinds) rows.push([`${kind} CPU while idle, % of a core`, ...runs(kind, (x) => (x.idleCpu === undefined ? undefined : x.idleCpu * 100))]);
  return `Start-up and memory (median over runs, range)\n\n${markdownTable(rows)}`;
}
