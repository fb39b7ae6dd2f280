// Library entry: run the conformance suite against a registry URL.
import type { CheckResult } from './check';
import { discovery } from './discovery';
import { management } from './management';
import { pushManifests } from './manifests';
import { pull } from './pull';
import { pushBlobs } from './push';
import { CATEGORIES, Suite, type Category, type ConformanceOptions } from './suite';

export { CATEGORIES, type Category, type ConformanceOptions, type CheckResult };

export interface ConformanceReport {
  passed: number;
  failed: number;
  warned: number;
  skipped: number;
  results: CheckResult[];
  namespace: string;
}

const RUN: Record<Category, ((s: Suite) => Promise<void>)[]> = {
  pull: [pull],
  push: [pushBlobs, pushManifests],
  discovery: [discovery],
  management: [management],
};

export async function runConformance(opts: ConformanceOptions): Promise<ConformanceReport> {
  const s = new Suite(opts);
  try {
    await s.check('base', 'GET /v2/ answers 200', async (e) => {
      e.status(await s.req('GET', '/v2/'), 200);
    });
    for (const c of CATEGORIES) {
      if (opts.skip?.includes(c)) s.skip(c, '*', 'category skipped by request');
      else for (const run of RUN[c]) await run(s);
    }
    // Rules for every response, judged on everything the run saw.
    await s.check('base', 'every /v2 response carries Docker-Distribution-API-Version: registry/2.0', async (e) => {
      const v = s.client.violations.filter((x) => x.kind === 'api-version');
      if (v.length) e.fail('SHOULD', `${v.length} responses without it, e.g. ${v.slice(0, 3).map((x) => x.what).join('; ')}`);
    });
    await s.check('base', 'no request was answered with a 5xx', async (e) => {
      for (const v of s.client.violations.filter((x) => x.kind === '5xx')) e.fail('MUST', v.what);
    });
  } finally {
    s.client.close();
  }
  const count = (o: CheckResult['outcome']) => s.results.filter((r) => r.outcome === o).length;
  return { passed: count('ok'), failed: count('fail'), warned: count('warn'), skipped: count('skip'), results: s.results, namespace: s.ns };
}

/** One line per check: `ok`, `warn` (a SHOULD/MAY not met), `not ok` or `skip`, with the reasons. */
export function formatResult(r: CheckResult): string {
  const label = { ok: 'ok', warn: 'warn', fail: 'not ok', skip: 'skip' }[r.outcome];
  const head = `${label.padEnd(6)} ${r.category}: ${r.name}`;
  if (r.outcome === 'ok') return head;
  return head + r.failures.map((f) => `\n         ${r.outcome === 'skip' ? '' : `[${f.level}] `}${f.message}`).join('');
}
