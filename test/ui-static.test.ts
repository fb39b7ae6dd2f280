// The built UI as berth serves it: the page at / and at the UI's own paths
// with a strict Content-Security-Policy and no caching; hashed assets cached
// for a year, gzipped; nothing inline; off with berth.ui.enabled: false.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import t from 'tap';
import { startBerth } from './helpers/berth';
import { WWW } from '../ui/static';

t.test('served at / and at UI paths, assets hashed and cached', async (t) => {
  const b = await startBerth();
  t.teardown(() => b.stop());
  const page = await fetch(`${b.url}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.equal(page.headers.get('cache-control'), 'no-cache');
  const csp = page.headers.get('content-security-policy') ?? '';
  t.match(csp, /default-src 'none'/);
  t.match(csp, /script-src 'self'(;|$)/);
  t.match(csp, /style-src 'self'(;|$)/);
  t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:/, 'no inline code, no other origins');
  t.equal(page.headers.get('x-frame-options'), 'DENY');
  const html = await page.text();
  t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  t.notMatch(html, /<style|style=/, 'no inline style');
  t.notMatch(html, /https?:\/\//, 'nothing from another origin');
  const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  t.equal(assets.length, 3, 'script, stylesheet, icon');
  for (const a of assets) {
    t.match(a, /-[A-Z0-9]{8}\.(js|css|svg)$/, `${a}: a content-hashed name`);
    const res = await fetch(b.url + a, { headers: { 'accept-encoding': 'gzip' } });
    t.equal(res.status, 200);
    t.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const body = Buffer.from(await res.arrayBuffer());
    t.same(body, fs.readFileSync(path.join(WWW, a)), 'fetch undoes the gzip: the bytes of the build');
    t.ok(res.headers.get('etag'));
  }
  const js = assets.find((a) => a.endsWith('.js'))!;
  const raw = await fetch(b.url + js, { headers: { 'accept-encoding': 'gzip' } }).then((r) => r.headers.get('content-encoding'));
  t.equal(raw, 'gzip', 'compressed for browsers that take it');
  const size = zlib.gzipSync(fs.readFileSync(path.join(WWW, js)), { level: 9 }).length;
  t.ok(size <= 100 * 1024, `shipped JavaScript ${size} bytes gzipped (budget 100 KB)`);
  for (const p of ['/login', '/storage', '/r/team/app', '/r/team/app@sha256:' + '0'.repeat(64)]) {
    const r = await fetch(b.url + p);
    t.equal(r.status, 200, `${p}: the page`);
    t.equal(await r.text(), html);
  }
  t.equal((await fetch(`${b.url}/assets/main-NOTBUILT.js`)).status, 404, 'unknown asset');
  t.equal((await fetch(`${b.url}/r`)).status, 404, 'not a UI path');
  t.equal((await fetch(`${b.url}/`, { method: 'POST' })).status, 404, 'only GET and HEAD');
  t.equal((await fetch(`${b.url}/v2/`)).status, 200, '/v2 on the same port');
});

t.test('berth.ui.enabled: false', async (t) => {
  const b = await startBerth({ env: { REGISTRY_BERTH_UI_ENABLED: 'false' } });
  t.teardown(() => b.stop());
  t.equal((await fetch(`${b.url}/`)).status, 404);
  t.equal((await fetch(`${b.url}/login`)).status, 404);
});
