// The admin API over real HTTP, for tests: JSON in, JSON (or the registry's
// error body) out, and waiting until the repository table's figures are in.
import { waitFor } from './ops-client';

export interface ApiReply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export async function api<T = Record<string, unknown>>(url: string, path: string, opts: { method?: string; token?: string; headers?: Record<string, string> } = {}): Promise<ApiReply<T>> {
  const res = await fetch(url + path, {
    method: opts.method ?? 'GET',
    headers: { ...opts.headers, ...(opts.token && { authorization: `Bearer ${opts.token}` }) },
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

/** The first error code of an error body. */
export const errorCode = (r: ApiReply) => (r.body as { errors?: { code: string }[] }).errors?.[0]?.code;

/**
 * Until the registry is ready and no repository's figures are being
 * recomputed, seen twice half a second apart (a push's sharing refresh
 * follows its response).
 */
export async function indexSettled(url: string, timeoutMs = 20_000): Promise<void> {
  const settled = async () => {
    const r = await api<{ indexes?: { summarizing: number; markers: string } }>(url, '/readyz');
    return r.status === 200 && r.body.indexes?.summarizing === 0 && r.body.indexes.markers === 'complete';
  };
  await waitFor('the index to settle', async () => (await settled()) && (await new Promise((r) => setTimeout(r, 500))) === undefined && settled(), timeoutMs);
}
