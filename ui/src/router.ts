// Client-side routes on real paths (the server answers each with the page:
// ui/static.ts PAGE). Links are plain <a href>; a click on one in this origin
// is taken over, so middle-click, copy-link and open-in-tab keep working.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'repositories' }
  | { page: 'repository'; name: string }
  | { page: 'image'; name: string; reference: string }
  | { page: 'storage' }
  | { page: 'login' }
  | { page: 'notfound' };

/**
 * `/r/NAME` is a repository; `/r/NAME@DIGEST` and `/r/NAME:TAG` an image, as in a `docker pull`
 * reference (a repository name holds neither '@' nor ':').
 */
export function parseRoute(pathname: string): Route {
  if (pathname === '/') return { page: 'repositories' };
  if (pathname === '/login') return { page: 'login' };
  if (pathname === '/storage') return { page: 'storage' };
  if (pathname.startsWith('/r/')) {
    let rest: string;
    try {
      rest = decodeURIComponent(pathname.slice(3));
    } catch {
      return { page: 'notfound' };
    }
    const at = rest.indexOf('@');
    if (at > 0) return { page: 'image', name: rest.slice(0, at), reference: rest.slice(at + 1) };
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) return { page: 'image', name: rest.slice(0, colon), reference: rest.slice(colon + 1) };
    if (rest) return { page: 'repository', name: rest };
  }
  return { page: 'notfound' };
}

const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');
export const repoHref = (name: string) => `/r/${enc(name)}`;
export const imageHref = (name: string, digest: string) => `/r/${enc(name)}@${digest}`;

const listeners = new Set<() => void>();
const notify = () => listeners.forEach((f) => f());

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  history[opts.replace ? 'replaceState' : 'pushState'](null, '', to);
  notify();
}

/** The current path and query; re-renders on navigation. */
export function useLocation(): { pathname: string; search: URLSearchParams } {
  const [, bump] = useState(0);
  const rendered = location.pathname + location.search;
  useEffect(() => {
    const f = () => bump((n) => n + 1);
    listeners.add(f);
    // A navigation between this render and now would otherwise go unseen.
    if (location.pathname + location.search !== rendered) f();
    return () => void listeners.delete(f);
  }, []);
  return { pathname: location.pathname, search: new URLSearchParams(location.search) };
}

export function startRouter(): void {
  addEventListener('popstate', notify);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    if (a.pathname.startsWith('/berth/') || a.pathname.startsWith('/v2/')) return;
    if (a.hash && a.pathname === location.pathname) return; // in-page (the skip link)
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
}
