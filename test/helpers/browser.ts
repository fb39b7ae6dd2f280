// A real browser for the UI tests: Debian's chromium (apt package `chromium`),
// driven headless by playwright-core, never a downloaded browser. Screenshots
// go to .ci/logs/ui (ignored by git), one PNG per page and step.
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { inCI } from './clients';
import { tempDir } from './berth';

export const CHROMIUM = '/usr/bin/chromium';
/** Where screenshots are kept (the README says so): the repository's .ci/logs/ui. */
export const SHOTS = path.resolve(__dirname, '../../../.ci/logs/ui');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium, or (outside CI) a skip with the reason when it is not installed; under CI=true a failure. */
export function needChromium(t: Test): boolean {
  if (fs.existsSync(CHROMIUM)) return true;
  const why = `${CHROMIUM} not found (Debian: apt-get install chromium)`;
  if (inCI()) t.fail(`${why}; CI=true requires it`);
  else t.skip(`browser tests: ${why}`, () => {});
  return false;
}

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Accessibility problems axe-core finds on the page as it is now (WCAG 2 A and AA: names and
 * labels for screen readers, contrast, landmarks), as "rule: target" lines. Evaluated through
 * the debugging protocol, so the page's Content-Security-Policy stays as served.
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  const loaded = await page.evaluate(() => 'axe' in window);
  if (!loaded) await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(o: unknown): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }> } }).axe;
    const r = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
  });
  return found;
}

export interface Session {
  browser: BrowserContext;
  /** A fresh page of a fresh profile (no cookies shared with other sessions). */
  page: Page;
  /** Save a screenshot as SHOTS/<name>.png (full page). */
  shot(name: string): Promise<string>;
  /** A screenshot, then what axe-core finds wrong for a screen reader or the eye ([] when nothing). */
  look(name: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * A browser profile of its own: its own --user-data-dir, so cookies never cross between two
 * users under test. One chromium process per profile (launchPersistentContext).
 */
export async function openBrowser(t: Test, opts: { width?: number; height?: number; dark?: boolean; prefix?: string } = {}): Promise<Session> {
  const profile = tempDir('berth-chromium-');
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 860 },
    colorScheme: opts.dark ? 'dark' : 'light',
    reducedMotion: 'reduce',
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  // A page error or a CSP violation is a test failure, not a line in a log nobody reads.
  page.on('pageerror', (e) => t.fail(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) t.fail(`CSP: ${m.text()}`);
  });
  fs.mkdirSync(SHOTS, { recursive: true });
  const session: Session = {
    browser,
    page,
    async shot(name) {
      const file = path.join(SHOTS, `${opts.prefix ?? ''}${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async look(name) {
      await session.shot(name);
      return accessibilityProblems(page);
    },
    close: () => browser.close(),
  };
  t.teardown(async () => {
    // What the page showed when a test failed is the first thing to look at.
    if (!t.passing()) await session.shot(`FAILED-${t.name.replace(/\W+/g, '-').slice(0, 60)}`).catch(() => undefined);
    await browser.close().catch(() => undefined);
  });
  return session;
}

export type { Page };
