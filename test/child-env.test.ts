// tap runs each test file with NODE_OPTIONS=--import=<this checkout>/node_modules/@tapjs/...
// and hands it on to every process the file spawns. No process a test starts may keep it
// (test/helpers/process.ts): a node outside this checkout (a chroot, a container) cannot
// load the hook and does not start, which is how deploy/scripts/base-image.sh failed on
// every fresh machine, and a child registry would run with tap's hooks loaded.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { startBerth } from './helpers/berth';
import { runCli } from './helpers/cli';
import { run } from './helpers/clients';

const environ = (pid: number) => fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
const PRINT = ['-p', 'Object.keys(process.env).filter((k) => /NODE_OPTIONS|TAPJS/.test(k)).join() || "none"'];

t.test('tap gives this file NODE_OPTIONS (else the tests below prove nothing)', async (t) => {
  t.match(process.env.NODE_OPTIONS, /@tapjs/);
});

t.test('a child registry does not inherit it', async (t) => {
  const b = await startBerth();
  t.teardown(() => b.stop());
  t.same(environ(b.proc.pid!).filter((kv) => /^(NODE_OPTIONS|_TAPJS_)/.test(kv)), []);
});

t.test('nor any node a test runs, whichever way it is spawned and with whatever env', async (t) => {
  t.equal((await run(process.execPath, PRINT)).stdout.trim(), 'none', 'the clients helper');
  t.equal(execFileSync(process.execPath, PRINT, { encoding: 'utf8' }).trim(), 'none', 'execFileSync');
  const env = { ...process.env, NODE_OPTIONS: process.env.NODE_OPTIONS };
  t.equal(spawnSync(process.execPath, PRINT, { env, encoding: 'utf8' }).stdout.trim(), 'none', 'spawnSync given our env');
  t.equal(execFileSync('sh', ['-c', `exec "${process.execPath}" "$@"`, 'sh', ...PRINT], { encoding: 'utf8' }).trim(), 'none', 'through a shell');
});

t.test('a hook that only exists here does not break the CLI a test runs', async (t) => {
  const tapOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = '--import=/nonexistent/hook.mjs';
  t.teardown(() => void (process.env.NODE_OPTIONS = tapOptions));
  const r = await runCli(['--version'], undefined);
  t.equal(r.code, 0, r.stderr);
});
