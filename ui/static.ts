// Serves the built UI (dist/ui/www, made by ui/build.ts): the page at / and at
// the UI's own paths, and its hashed assets. Everything it shows comes from
// the admin API; nothing here knows about the store.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type Koa from 'koa';

/** Where ui/build.ts writes: dist/ui/www beside this file once compiled. */
export const WWW = path.join(__dirname, 'www');
export const ASSETS = '/assets/';

/** Paths the UI's router owns (ui/src/router.ts): each answers with the page. */
export const PAGE = /^\/(?:|login|storage|r\/.+)$/;

/**
 * Scripts and styles from this origin only, no inline code, no plugins, no framing: the page
 * runs nothing it did not ship with. `style-src` allows what the CSSOM sets (bar widths), which
 * CSP never blocks, and no style attributes or elements.
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
}

function load(file: string, type: string): Asset {
  const body = fs.readFileSync(file);
  // Compressed once at start: the whole UI is a few tens of KB.
  const gzip = body.length > 1024 ? zlib.gzipSync(body, { level: 9 }) : undefined;
  return { body, gzip, type, etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

function send(ctx: Koa.Context, a: Asset): void {
  ctx.set('ETag', a.etag);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.vary('Accept-Encoding');
  ctx.type = a.type;
  ctx.status = 200; // ctx.fresh looks at it
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  if (a.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = a.gzip;
  } else {
    ctx.body = a.body;
  }
}

/** The UI middleware, or undefined (with the reason) when the UI has not been built. */
export function uiAssets(dir = WWW): { middleware?: Koa.Middleware; missing?: string } {
  const indexFile = path.join(dir, 'index.html');
  if (!fs.existsSync(indexFile)) return { missing: `${indexFile} not found (npm run build makes it)` };
  const page = load(indexFile, 'text/html; charset=utf-8');
  const assets = new Map<string, Asset>();
  for (const name of fs.readdirSync(path.join(dir, 'assets'))) {
    const type = TYPES[path.extname(name)];
    if (type) assets.set(name, load(path.join(dir, 'assets', name), type));
  }
  const middleware: Koa.Middleware = async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (PAGE.test(ctx.path)) {
      // The page names its assets by hash: always revalidate it, so a new build shows at once.
      ctx.set('Cache-Control', 'no-cache');
      ctx.set('Content-Security-Policy', CSP);
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('Referrer-Policy', 'same-origin');
      return send(ctx, page);
    }
    const asset = ctx.path.startsWith(ASSETS) ? assets.get(ctx.path.slice(ASSETS.length)) : undefined;
    if (!asset) return next();
    // Content-hashed names never change meaning.
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
    send(ctx, asset);
  };
  return { middleware };
}
