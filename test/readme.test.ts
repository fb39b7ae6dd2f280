// The documentation stands on its own: every path a Markdown file in the repository links
// to or names with ../ is inside the repository, and every key of berth's own config
// sections has a row in the README's tables.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { SCHEMA, type Field } from '../server/config';

const REPO = path.resolve(__dirname, '../..');
const SKIP = new Set(['node_modules', 'dist', '.git', '.ci', '.tap']);

function markdownFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return SKIP.has(e.name) ? [] : markdownFiles(p);
    return e.name.endsWith('.md') ? [p] : [];
  });
}

t.test('links and ../ paths in the Markdown files stay inside the repository', async (t) => {
  const files = markdownFiles(REPO);
  t.ok(files.length >= 5, `${files.length} files`);
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    // [text](target) with a relative target, and a file named in code: `../dir/file.md`
    const targets = [...text.matchAll(/\]\(([^)\s#]+)[^)]*\)/g), ...text.matchAll(/`(\.\.\/[^`\s]*\.[a-z]+)`/g)]
      .map((m) => m[1])
      .filter((p) => !/^[a-z]+:/i.test(p));
    for (const target of targets) {
      const resolved = path.resolve(path.dirname(file), target);
      const where = `${path.relative(REPO, file)}: ${target}`;
      if (!resolved.startsWith(REPO + path.sep)) t.fail(`${where} is outside the repository`);
      else if (!fs.existsSync(resolved)) t.fail(`${where} does not exist`);
    }
  }
});

t.test("berth's own config keys (berth.*, storage.maintenance.*) are in the README's tables", async (t) => {
  const rows = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8').split('\n').filter((l) => l.startsWith('| `'));
  const leaves = (f: Field, at: string): string[] => (f.kind === 'object' ? Object.entries(f.fields).flatMap(([k, v]) => leaves(v, `${at}.${k}`)) : [at]);
  const keys = [...leaves(SCHEMA.berth, 'berth'), ...leaves((SCHEMA.storage as { fields: Record<string, Field> }).fields.maintenance, 'storage.maintenance')];
  t.ok(keys.length > 10, `${keys.length} keys`);
  for (const key of keys) {
    // `a.b.c`, or `a.b.{x,c}`, or `a.b.x`, `.c` in a row's first cell
    const parent = key.slice(0, key.lastIndexOf('.'));
    const leaf = key.slice(key.lastIndexOf('.') + 1);
    const documented = rows.some((r) => {
      const cell = r.split('|')[1];
      return cell.includes(`\`${key}\``) || cell.includes(`\`${parent}.{`) && new RegExp(`[{,]${leaf}[,}]`).test(cell) || cell.includes(`\`${parent}.`) && cell.includes(`\`.${leaf}\``);
    });
    t.ok(documented, key);
  }
});
