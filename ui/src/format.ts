// How numbers, dates and digests read: binary units as `berth du` prints
// them, relative times with the exact one a hover away, short digests.
import type { Platform } from './api';

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

export const count = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;

const RELATIVE = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

export function ago(iso: string): string {
  const s = (Date.parse(iso) - Date.now()) / 1000;
  for (const [unit, secs] of STEPS) if (Math.abs(s) >= secs) return RELATIVE.format(Math.round(s / secs), unit);
  return 'just now';
}

export const exact = (iso: string) => new Date(iso).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });

/** `sha256:0123456789ab` — enough to tell digests apart on a screen. */
export const shortDigest = (d: string) => d.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1');

export const platform = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

export const ratio = (r: number) => `${r >= 10 ? Math.round(r) : r.toFixed(2)}×`;
