// Builds the UI (`npm run build` runs it after tsc): ui/src bundled by esbuild
// into dist/ui/www/assets with content-hashed names, and the page that loads
// them. Fails when the shipped JavaScript passes its budget.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';
import { WWW } from './static';

/** ui/src in the source tree; this file runs from dist/ui. */
const SRC = path.resolve(__dirname, '../../ui/src');
/** gzipped bytes of JavaScript the page may ship (issue #14: at most 100 KB). */
const JS_BUDGET = 100 * 1024;

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;');

export async function buildUi(out = WWW): Promise<{ files: string[]; jsGzip: number }> {
  fs.rmSync(out, { recursive: true, force: true });
  const assets = path.join(out, 'assets');
  const result = await esbuild.build({
    entryPoints: [path.join(SRC, 'main.tsx'), path.join(SRC, 'icon.svg')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    loader: { '.svg': 'copy' },
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    outdir: assets,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const files = Object.keys(result.metafile.outputs).map((f) => path.basename(f));
  const find = (ext: string, prefix: string) => {
    const f = files.find((n) => n.startsWith(prefix) && n.endsWith(ext));
    if (!f) throw new Error(`ui build: no ${prefix}*${ext} in ${files.join(', ')}`);
    return `/assets/${f}`;
  };
  const [js, css, icon] = [find('.js', 'main-'), find('.css', 'main-'), find('.svg', 'icon-')];
  // No inline script or style: the Content-Security-Policy (ui/static.ts) allows none.
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>berth</title>
<link rel="icon" href="${escapeAttr(icon)}" type="image/svg+xml">
<link rel="stylesheet" href="${escapeAttr(css)}">
<script type="module" src="${escapeAttr(js)}"></script>
</head>
<body>
<div id="app"><noscript>berth's web UI needs JavaScript. The registry itself is at /v2/.</noscript></div>
</body>
</html>
`;
  fs.writeFileSync(path.join(out, 'index.html'), html);
  const jsGzip = files
    .filter((f) => f.endsWith('.js'))
    .reduce((n, f) => n + zlib.gzipSync(fs.readFileSync(path.join(assets, f)), { level: 9 }).length, 0);
  if (jsGzip > JS_BUDGET) throw new Error(`ui build: ${jsGzip} bytes of gzipped JavaScript, over the ${JS_BUDGET} budget`);
  return { files, jsGzip };
}

if (require.main === module) {
  buildUi().then(
    ({ files, jsGzip }) => console.log(`ui: ${files.join(', ')} (JavaScript ${(jsGzip / 1024).toFixed(1)} KB gzipped)`),
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
