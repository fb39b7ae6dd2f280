// The admin API (/berth/v1) as the UI sees it: types from the contract, one
// fetch wrapper, and the session. The cookie is HttpOnly: the UI never holds
// a token, only the CSRF value the session endpoint hands out.

export interface Upstream {
  prefix: string;
  remoteurl: string;
}

export interface Repo {
  name: string;
  tags: number;
  images: number;
  lastPush: string | null;
  logicalBytes: number;
  uniqueBytes: number;
  upstream?: Upstream;
  deletable?: boolean;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ReferrerCounts {
  signatures: number;
  sboms: number;
  attestations: number;
  other: number;
}

export type Kind = 'image' | 'index' | 'artifact';

export interface Tag {
  name: string;
  digest: string;
  mediaType: string;
  kind: Kind;
  artifactType?: string;
  platforms: Platform[];
  size: number;
  pushedAt: string | null;
  pushedBy: string | null;
  referrers: ReferrerCounts;
}

export interface Layer {
  digest: string;
  mediaType: string;
  size: number;
  sharedImages: number;
  sharedRepositories: number;
}

export interface HistoryEntry {
  created?: string;
  createdBy?: string;
  comment?: string;
  emptyLayer: boolean;
}

export interface ImageInfo {
  created?: string;
  os: string;
  architecture: string;
  variant?: string;
  author?: string;
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  env: string[];
  labels: Record<string, string>;
  exposedPorts: string[];
  workingDir?: string;
  user?: string;
  history: HistoryEntry[];
  layers: Layer[];
}

export type ReferrerKind = 'signature' | 'sbom' | 'attestation' | 'other';

export interface Referrer {
  digest: string;
  mediaType: string;
  artifactType?: string;
  size: number;
  annotations?: Record<string, string>;
  kind: ReferrerKind;
}

export interface Manifest {
  repository: string;
  digest: string;
  mediaType: string;
  kind: Kind;
  artifactType?: string;
  size: number;
  tags: string[];
  manifest: unknown;
  config?: unknown;
  image?: ImageInfo;
  platforms?: { digest: string; mediaType: string; size: number; platform: Platform }[];
  subject?: string;
  referrers: Referrer[];
}

/** Store-wide figures are null for a caller without catalog rights: they would describe what it may not see. */
export interface Usage {
  computedAt: string;
  repositoryCount: number;
  logicalBytes: number;
  uniqueBytes: number;
  storedBytes: number | null;
  blobs: number | null;
  sharedBytes: number | null;
  unusedBytes: number | null;
  dedupRatio: number | null;
  repositories: { name: string; tags: number; logicalBytes: number; uniqueBytes: number }[];
  sharedLayers: { digest: string; size: number; repositories: number; images: number }[];
}

export interface DeletePreview {
  repository: string;
  tags: string[];
  manifests: string[];
  freeableBytes: number;
}

export interface Session {
  user: string | null;
  auth: 'none' | 'token' | 'htpasswd';
  deletesEnabled: boolean;
  host: string;
  csrf?: string;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const BASE = '/berth/v1';

/** Called when the server says the session is over (the app shows the sign-in page). */
let onExpired: () => void = () => {};
export function whenSessionExpires(f: () => void): void {
  onExpired = f;
}

async function request<T>(method: string, path: string, body?: unknown, csrf?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (csrf) headers['X-Berth-CSRF'] = csrf;
  let res: Response;
  try {
    res = await fetch(BASE + path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'NETWORK', 'berth did not answer; is it running?');
  }
  if (res.status === 204) return undefined as T;
  const json = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = (json as { errors?: { code?: string; message?: string }[] } | undefined)?.errors?.[0];
    const error = new ApiError(res.status, e?.code ?? 'UNKNOWN', e?.message ?? `${res.status} ${res.statusText}`);
    if (res.status === 401 && path !== '/session') onExpired();
    throw error;
  }
  return json as T;
}

export const get = <T>(path: string) => request<T>('GET', path);

/** A state-changing request: with the CSRF value of the session as it is now (renewal changes it). */
export async function change<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const s = await get<Session>('/session');
  return request<T>(method, path, body, s.csrf);
}

export const signIn = (username: string, password: string) => request<Session>('POST', '/session', { username, password });

/** A repository name in a URL path: its '/' stay, everything else is encoded. */
export const repoPath = (name: string) => name.split('/').map(encodeURIComponent).join('/');

export const query = (params: Record<string, string | number | undefined>) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
};
