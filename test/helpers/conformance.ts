// Turn a conformance report into tap assertions, one per check. Shared by the
// filesystem and S3 runs.
import type { Test } from 'tap';
import type { CheckResult } from '../../conformance/index';

/** One assertion per check, named after it, carrying the reasons on failure. */
export function assertEach(tt: Test, results: CheckResult[]): void {
  for (const r of results) {
    const name = `${r.category}: ${r.name}`;
    const reasons = r.failures.map((f) => `[${f.level}] ${f.message}`);
    if (r.outcome === 'skip') tt.pass(name, { skip: reasons.join('; ') });
    else tt.ok(r.outcome !== 'fail', name, r.outcome === 'ok' ? {} : { reasons });
  }
}
