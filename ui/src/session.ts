// Who the UI is signed in as: asked of the server at start, after sign-in and
// sign-out, and now and then while the tab is visible (which also renews the
// short-lived session; a tab left hidden lets it expire).
import { useEffect, useState } from 'preact/hooks';
import { change, get, type Session, signIn, whenSessionExpires } from './api';
import { navigate } from './router';

let current: Session | undefined;
/** Bumped on every change of identity: pages key their data on it, so nothing of the last user stays. */
let epoch = 0;
const listeners = new Set<() => void>();

function set(s: Session | undefined): void {
  if (s?.user !== current?.user) epoch++;
  current = s;
  listeners.forEach((f) => f());
}

/** The server no longer knows the session (expired, password changed): say so on the sign-in page. */
function expired(): void {
  if (!current?.user) return;
  set({ ...current, user: null, csrf: undefined });
  const to = loginHref();
  navigate(`${to}${to.includes('?') ? '&' : '?'}expired=1`);
}

export const refreshSession = () =>
  get<Session>('/session').then((s) => {
    if (current?.user && !s.user) {
      expired();
      set(s);
    } else set(s);
  });

export function useSession(): { session?: Session; epoch: number } {
  const [, bump] = useState(0);
  const rendered = current;
  useEffect(() => {
    const f = () => bump((n) => n + 1);
    listeners.add(f);
    // The answer may have come between this render and now, with nobody listening yet.
    if (current !== rendered) f();
    return () => void listeners.delete(f);
  }, []);
  return { session: current, epoch };
}

export async function login(username: string, password: string): Promise<void> {
  set(await signIn(username, password));
}

export async function logout(): Promise<void> {
  await change('DELETE', '/session').catch(() => undefined);
  set(await get<Session>('/session'));
  navigate('/');
}

/** Where to go back to after signing in: only a path of this UI. */
export function loginHref(): string {
  const here = location.pathname + location.search;
  return here === '/login' || here.startsWith('/login?') ? '/login' : `/login?next=${encodeURIComponent(here)}`;
}

export function startSession(): void {
  // A 401 from a data endpoint: ask the session endpoint before sending anyone to sign in.
  whenSessionExpires(() => void refreshSession().catch(() => undefined));
  void refreshSession().catch(() => set({ user: null, auth: 'none', deletesEnabled: false, host: location.host }));
  setInterval(() => {
    if (document.visibilityState === 'visible' && current?.user) void refreshSession().catch(() => undefined);
  }, 60_000);
}
