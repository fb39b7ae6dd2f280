// Every sub-command answers --help and -h with its usage on stdout, exit 0,
// and does nothing else: serve starts nothing, config check reads no file named
// "--help", gc/verify/du touch no store, and no ./data appears. The table is
// the CLI's own command list, so a command added later is covered here too.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { COMMANDS } from '../server/cli';
import { tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';

// runCli passes this process's environment on: the tests here must not depend on any REGISTRY_* of it.
for (const k of Object.keys(process.env)) if (k.startsWith('REGISTRY_') || k === 'BERTH_CONFIG') delete process.env[k];

async function help(t: Test, args: string[], first: string) {
  const cwd = tempDir('berth-help-');
  const r = await runCli(args, undefined, {}, 20_000, cwd);
  t.equal(r.code, 0, `${args.join(' ')}: exit 0`, { stderr: r.stderr });
  t.match(r.stdout, new RegExp(`^usage: berth ${first}`), `${args.join(' ')}: its usage on stdout`);
  t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
  t.same(fs.readdirSync(cwd), [], `${args.join(' ')}: nothing created in the working directory`);
}

t.test('the command list is what the CLI offers', async (t) => {
  t.ok(Object.keys(COMMANDS).length >= 7, Object.keys(COMMANDS).join(', '));
  for (const [name, c] of Object.entries(COMMANDS)) {
    t.match(c.usage, new RegExp(`^usage: berth ${name}\\b`), `${name} declares a usage that starts with its name`);
    t.ok(c.summary.length > 0, `${name} has a summary`);
  }
});

for (const name of Object.keys(COMMANDS)) {
  t.test(`berth ${name} --help / -h`, async (t) => {
    for (const flag of ['--help', '-h']) await help(t, [name, flag], name);
  });
}

t.test('help inside sub-commands and argument lists, and berth help CMD', async (t) => {
  await help(t, ['config', 'check', '--help'], 'config');
  await help(t, ['user', 'add', 'alice', '-h'], 'user');
  await help(t, ['gc', '--dry-run', '--help'], 'gc');
  await help(t, ['serve', '--config', 'nonexistent.yml', '--help'], 'serve');
  await help(t, ['help', 'du'], 'du');
  await help(t, ['--help'], '<command>');
  await help(t, [], '<command>');
  const r = await runCli(['help'], undefined, {}, 20_000, tempDir('berth-help-'));
  for (const name of Object.keys(COMMANDS)) t.match(r.stdout, new RegExp(`^  ${name} +\\S`, 'm'), `berth help lists ${name}`);
});

t.test('usage errors exit 2 and point at --help', async (t) => {
  const cwd = tempDir('berth-help-');
  for (const args of [['frobnicate'], ['gc', '--bogus'], ['config', 'frob'], ['user', 'add', 'alice']]) {
    const r = await runCli(args, undefined, {}, 20_000, cwd);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, /usage: berth|--help/, `${args.join(' ')}: says how to get the usage`);
  }
  t.same(fs.readdirSync(cwd), [], 'nothing created');
});
