// What the benchmarks share to report: samples per metric and server,
// medians, the ratio first/second, number formatting, a markdown table.
import { procCpuSeconds } from '../test/helpers/process';
import type { OciClient } from '../test/helpers/oci-client';
import { ROUNDS } from './options';
import { fmt, markdownTable, median } from './stats';

export interface Server {
  label: string;
  kind: 'berth' | 'distribution';
  /** What the server printed, and its exit code or signal if it is gone. */
  diagnose(): string;
  url: string;
  pid: number;
  client: OciClient;
  stop(): Promise<unknown>;
}

export interface Metric {
  name: string;
  unit: string;
  /** How the ratio first/second is judged. */
  target?: { op: '>=' | '<='; ratio: number };
  /** An absolute bound on the first target (e.g. berth's RSS). */
  limit?: { op: '<='; value: number };
  samples: Map<string, number[]>;
}

export const metrics: Metric[] = [];

export function metric(name: string, unit: string, extra: Pick<Metric, 'target' | 'limit'> = {}): Metric {
  const m: Metric = { name, unit, ...extra, samples: new Map() };
  metrics.push(m);
  return m;
}

export function record(m: Metric, s: Server, v: number) {
  const list = m.samples.get(s.label) ?? [];
  list.push(v);
  m.samples.set(s.label, list);
}

/** Runs fn for each server, `rounds` times, alternating which goes first (A,B then B,A). */
export async function interleaved(servers: Server[], fn: (s: Server, round: number) => Promise<void>, rounds = ROUNDS) {
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...servers].reverse() : servers;
    for (const s of order) await fn(s, r);
  }
}

export const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

export function log(msg: string) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Wall-clock and server CPU seconds taken by fn. */
export async function timed(s: Server, fn: () => Promise<unknown>): Promise<{ secs: number; cpu: number }> {
  const cpu0 = procCpuSeconds(s.pid);
  const t0 = process.hrtime.bigint();
  await fn();
  return { secs: seconds(t0), cpu: procCpuSeconds(s.pid) - cpu0 };
}

/** One row per metric: medians per server, the ratio and whether the target holds. */
export function table(servers: Server[], list: Metric[] = metrics): string {
  const [a, b] = servers.map((s) => s.label);
  const rows = [['metric', a, b, `${a}/${b}`, 'target', '']];
  for (const m of list) {
    const va = median(m.samples.get(a) ?? [NaN]);
    const vb = median(m.samples.get(b) ?? [NaN]);
    const ratio = va / vb;
    let target = '';
    let ok = '';
    if (m.target) {
      target = `${m.target.op} ${m.target.ratio}x`;
      ok = (m.target.op === '>=' ? ratio >= m.target.ratio : ratio <= m.target.ratio) ? 'ok' : 'MISS';
    } else if (m.limit) {
      target = `${a} ${m.limit.op} ${m.limit.value} ${m.unit}`;
      ok = va <= m.limit.value ? 'ok' : 'MISS';
    }
    rows.push([`${m.name} (${m.unit})`, fmt(va), fmt(vb), `${ratio.toFixed(2)}x`, target, ok]);
  }
  return markdownTable(rows);
}
