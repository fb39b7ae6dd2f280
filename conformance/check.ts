// Checks and their outcome. Every assertion carries the requirement level of
// the spec sentence behind it; a check fails when a MUST assertion fails (or
// any assertion in strict mode) and warns when only SHOULD/MAY ones do.
import { describe, header, type Resp } from './client';

export type Level = 'MUST' | 'SHOULD' | 'MAY';
export type Outcome = 'ok' | 'fail' | 'warn' | 'skip';

export interface Failure {
  level: Level;
  message: string;
}

export interface CheckResult {
  category: string;
  name: string;
  outcome: Outcome;
  /** Why it failed, warned or was skipped; empty when ok. */
  failures: Failure[];
  ms: number;
}

/** Stop the current check: a later assertion cannot be meaningful. */
export class Abort extends Error {}

const SHOW_BODY = 300;

function bodyExcerpt(res: Resp): string {
  if (res.body.length === 0) return '';
  const s = res.body.toString('utf8', 0, Math.min(res.body.length, SHOW_BODY)).replace(/\s+/g, ' ');
  return ` body ${s}${res.body.length > SHOW_BODY ? '…' : ''}`;
}

export class Expect {
  readonly failures: Failure[] = [];

  fail(level: Level, message: string): void {
    this.failures.push({ level, message });
  }

  that(cond: boolean, level: Level, message: string): boolean {
    if (!cond) this.fail(level, message);
    return cond;
  }

  /** Status among `expected`; a MUST mismatch aborts the check. */
  status(res: Resp, expected: number | number[], level: Level = 'MUST'): boolean {
    const list = Array.isArray(expected) ? expected : [expected];
    if (list.includes(res.status)) return true;
    this.fail(level, `${describe(res)}: expected status ${list.join(' or ')}, got ${res.status}${bodyExcerpt(res)}`);
    if (level === 'MUST') throw new Abort();
    return false;
  }

  /** Header present, and equal to / matching / accepted by `want` when given. */
  header(res: Resp, name: string, want: string | RegExp | ((v: string) => boolean) | undefined, level: Level): string | undefined {
    const v = header(res, name);
    let ok = v !== undefined;
    if (ok && typeof want === 'string') ok = v === want;
    else if (ok && want instanceof RegExp) ok = want.test(v!);
    else if (ok && typeof want === 'function') ok = want(v!);
    if (!ok) {
      const exp = want === undefined ? 'present' : typeof want === 'function' ? 'valid' : String(want);
      this.fail(level, `${describe(res)}: header ${name} expected ${exp}, got ${v === undefined ? 'none' : JSON.stringify(v)}`);
    }
    return v;
  }

  /**
   * An error answer: status in `statuses` (at `statusLevel`), and a JSON body
   * `{"errors":[{code,message,detail}]}` whose first code is one of `codes`
   * (at `codeLevel`). HEAD answers carry no body, so only the status counts.
   */
  error(res: Resp, statuses: number | number[], codes: string | string[], statusLevel: Level = 'MUST', codeLevel: Level = 'SHOULD'): void {
    const list = Array.isArray(statuses) ? statuses : [statuses];
    const want = Array.isArray(codes) ? codes : [codes];
    // Whatever the level, a success or a server error is never an acceptable answer to bad input.
    if (res.status < 300 || res.status >= 500) {
      this.fail('MUST', `${describe(res)}: expected ${list.join(' or ')} ${want.join('/')}, got ${res.status}${bodyExcerpt(res)}`);
      throw new Abort();
    }
    if (!list.includes(res.status)) this.fail(statusLevel, `${describe(res)}: expected status ${list.join(' or ')}, got ${res.status}${bodyExcerpt(res)}`);
    if (res.status < 400) return;
    if (res.method === 'HEAD') return;
    this.errorBody(res, want, codeLevel);
  }

  /** The spec's error body shape and, when given, its code. */
  errorBody(res: Resp, codes: string[], codeLevel: Level): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body.toString());
    } catch {
      const want = codes.length ? ` with code ${codes.join('/')}` : '';
      this.fail(codeLevel, `${describe(res)}: expected a JSON error body${want}, got${bodyExcerpt(res) || ' an empty body'}`);
      return;
    }
    const errors = (parsed as { errors?: unknown }).errors;
    if (!Array.isArray(errors) || errors.length === 0) {
      this.fail('MUST', `${describe(res)}: JSON error body without an "errors" array:${bodyExcerpt(res)}`);
      return;
    }
    const first = errors[0] as { code?: unknown; message?: unknown; detail?: unknown };
    this.that(typeof first.code === 'string' && typeof first.message === 'string', 'MUST', `${describe(res)}: error entries need string "code" and "message":${bodyExcerpt(res)}`);
    this.that('detail' in first, 'MAY', `${describe(res)}: error entry has no "detail":${bodyExcerpt(res)}`);
    if (codes.length > 0) {
      const got = errors.map((e) => (e as { code?: unknown }).code);
      this.that(got.some((c) => codes.includes(c as string)), codeLevel, `${describe(res)}: expected error code ${codes.join(' or ')}, got ${got.join(', ')}`);
    }
  }

  /** Parse a JSON body or abort the check. */
  json<T = any>(res: Resp): T {
    try {
      return JSON.parse(res.body.toString()) as T;
    } catch {
      this.fail('MUST', `${describe(res)}: body is not JSON:${bodyExcerpt(res)}`);
      throw new Abort();
    }
  }
}

export function outcomeOf(failures: Failure[], strict: boolean): Outcome {
  if (failures.length === 0) return 'ok';
  return strict || failures.some((f) => f.level === 'MUST') ? 'fail' : 'warn';
}
