// Small pieces every page uses: data loading, times, copy buttons, badges,
// errors, bars. No inline styles anywhere (the CSP allows none): sizes that
// depend on data are SVG attributes.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get } from './api';
import { ago, exact } from './format';

export interface Loaded<T> {
  data?: T;
  error?: ApiError;
  loading: boolean;
  reload(): void;
}

/** GET an admin API path; a new path drops the old answer, so nothing stale shows under a new name. */
export function useApi<T>(path: string | undefined): Loaded<T> {
  const [state, set] = useState<{ path?: string; data?: T; error?: ApiError }>({});
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    get<T>(path).then(
      (data) => live && set({ path, data }),
      (error: ApiError) => live && set({ path, error }),
    );
    return () => void (live = false);
  }, [path, n]);
  const current = state.path === path;
  return { data: current ? state.data : undefined, error: current ? state.error : undefined, loading: !current, reload: () => setN((x) => x + 1) };
}

export function Time({ iso, unknown = 'unknown' }: { iso: string | null | undefined; unknown?: string }) {
  if (!iso) return <span class="muted">{unknown}</span>;
  return (
    <time dateTime={iso} title={exact(iso)}>
      {ago(iso)}
    </time>
  );
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && isSecureContext) return navigator.clipboard.writeText(text);
  // Plain-HTTP origins other than localhost have no clipboard API.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** A button that copies `text`; says so to screen readers too. */
export function Copy({ text, label, children }: { text: string; label: string; children?: ComponentChildren }) {
  const [done, setDone] = useState<'' | 'ok' | 'failed'>('');
  const timer = useRef<number | undefined>(undefined);
  const click = () => {
    copyText(text).then(
      () => setDone('ok'),
      () => setDone('failed'),
    );
    clearTimeout(timer.current);
    timer.current = window.setTimeout(() => setDone(''), 1600);
  };
  return (
    <button type="button" class="copy" onClick={click} aria-label={label} title={text} data-copy={text}>
      {children ?? <CopyIcon />}
      <span class="copied" aria-live="polite">
        {done === 'ok' ? 'Copied' : done === 'failed' ? 'Copy failed' : ''}
      </span>
    </button>
  );
}

export const CopyIcon = () => (
  <svg class="icon" viewBox="0 0 16 16" aria-hidden="true">
    <rect x="5" y="5" width="9" height="9" rx="1.5" />
    <path d="M11 3.5V3a1 1 0 0 0-1-1H3a1 1 0 0 0-1 1v7a1 1 0 0 0 1 1h.5" />
  </svg>
);

/** A `docker pull` line with its copy button. */
export function PullCommand({ reference }: { reference: string }) {
  const cmd = `docker pull ${reference}`;
  return (
    <div class="pull">
      {/* Focusable: on a narrow screen the line scrolls sideways. */}
      <code tabIndex={0}>{cmd}</code>
      <Copy text={cmd} label={`Copy ${cmd}`} />
    </div>
  );
}

export function Badge({ tone = 'plain', title, children }: { tone?: 'plain' | 'info' | 'good' | 'warn' | 'proxy'; title?: string; children: ComponentChildren }) {
  return (
    <span class={`badge ${tone}`} title={title}>
      {children}
    </span>
  );
}

export function ErrorBox({ error, what }: { error: ApiError; what: string }) {
  const text =
    error.code === 'NAME_UNKNOWN' || error.code === 'MANIFEST_UNKNOWN' || error.status === 404
      ? `No such ${what}, or you may not see it.`
      : error.message;
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

export const Loading = ({ what }: { what: string }) => (
  <p class="loading" role="status">
    Loading {what}…
  </p>
);

/** A horizontal bar for `value` out of `max`; `under` draws a lighter bar behind it (e.g. logical behind unique). */
export function Bar({ value, max, under, label }: { value: number; max: number; under?: number; label?: string }) {
  const w = (v: number) => (max > 0 ? Math.max(v > 0 ? 0.6 : 0, (100 * v) / max) : 0);
  return (
    <svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role={label ? 'img' : undefined} aria-label={label} aria-hidden={label ? undefined : true}>
      <rect class="track" width="100" height="10" rx="2" />
      {under !== undefined && <rect class="under" width={w(under)} height="10" rx="2" />}
      <rect class="value" width={w(value)} height="10" rx="2" />
    </svg>
  );
}

/** Sets the document title and moves focus to the page's heading on navigation (screen readers announce it). */
export function PageTitle({ title, children }: { title: string; children?: ComponentChildren }) {
  const h = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · berth`;
    if (document.activeElement === document.body || document.activeElement?.closest('a, nav')) h.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <h1 tabIndex={-1} ref={h}>
      {children ?? title}
    </h1>
  );
}
