// The docs' commands run as written: every berth command in a code block of
// the README, storage/GC.md, deploy/README.md and the example configs'
// comments is spelled one way, `node dist/server/cli.js <command>` (what
// `npm ci` builds), never `npx berth` (which installs the package into npm's
// cache and builds it again) or a bare `berth` (on no PATH after `npm ci`);
// and each command named answers --help.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { COMMANDS } from '../server/cli';
import { runCli } from './helpers/cli';

const REPO = path.resolve(__dirname, '../..');
const FORM = 'node dist/server/cli.js';

/** Shell lines of a document: code blocks of Markdown, comment lines of YAML. */
function shellLines(file: string): string[] {
  const text = fs.readFileSync(path.join(REPO, file), 'utf8');
  if (file.endsWith('.yml')) return text.split('\n').filter((l) => /^#\s{2,}\S/.test(l)).map((l) => l.replace(/^#\s+/, ''));
  const out: string[] = [];
  let inBlock = false;
  for (const line of text.split('\n')) {
    if (/^\s*```/.test(line)) inBlock = !inBlock;
    else if (inBlock) out.push(line.trim());
  }
  return out;
}

const docs = ['README.md', 'storage/GC.md', 'deploy/README.md', ...fs.readdirSync(path.join(REPO, 'deploy/examples')).filter((f) => f.endsWith('.yml')).map((f) => `deploy/examples/${f}`)];

t.test('every berth command in the docs is spelled the one way that works after npm ci', async (t) => {
  const uses = new Map<string, string>();
  for (const doc of docs) {
    for (const line of shellLines(doc)) {
      t.notMatch(line, /(^|[;&|(]\s*|\bnpx\s+)berth\s+[a-z-]/, `${doc}: ${line}`);
      for (const m of line.matchAll(/node dist\/server\/cli\.js\s+([a-z-]+)(?:\s+(check|add|passwd|remove))?/g)) uses.set(m[2] ? `${m[1]} ${m[2]}` : m[1], `${doc}: ${line}`);
    }
  }
  t.ok(uses.size >= 6, `the docs use ${FORM} for: ${[...uses.keys()].join(', ')}`);
  for (const [cmd, where] of uses) {
    t.ok(COMMANDS[cmd.split(' ')[0]], `${cmd} is a command (${where})`);
    const r = await runCli([...cmd.split(' '), '--help'], undefined, {}, 20_000, REPO);
    t.equal(r.code, 0, `${FORM} ${cmd} --help runs from the repository root`);
  }
});
