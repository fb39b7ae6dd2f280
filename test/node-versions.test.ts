// Which Node.js berth runs on is said in several places that must agree: package.json's
// engines (what npm checks), the README, and the newest LTS line that the container image
// (deploy/Dockerfile, the compose files, deploy/s3), the offline base image
// (deploy/scripts/base-image.sh) and CI's second test run (.ci/run) use.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const REPO = path.resolve(__dirname, '../..');
const read = (f: string) => fs.readFileSync(path.join(REPO, f), 'utf8');
const engines: string = JSON.parse(read('package.json')).engines.node;

/** Whether version (x.y.z) satisfies engines, a list of `^x.y.z` and `>=x.y.z` joined by `||`. */
function accepts(version: string): boolean {
  const num = (v: string) => v.split('.').map(Number);
  const atLeast = (a: number[], b: number[]) => a[0] !== b[0] ? a[0] > b[0] : a[1] !== b[1] ? a[1] > b[1] : a[2] >= b[2];
  const v = num(version);
  return engines.split('||').some((range) => {
    const m = /^\s*(\^|>=)(\d+\.\d+\.\d+)\s*$/.exec(range);
    if (!m) throw new Error(`engines: cannot read ${range}`);
    const min = num(m[2]);
    return atLeast(v, min) && (m[1] === '>=' || v[0] === min[0]);
  });
}

const newest = Number(/^NEWEST_LTS=(\d+)$/m.exec(read('.ci/run'))?.[1]);

t.test('one newest LTS line everywhere', async (t) => {
  t.ok(newest >= 24, `.ci/run: NEWEST_LTS=${newest}`);
  t.equal(/^TAG=.*NODE_RANGE=(\d+)$/m.exec(read('deploy/scripts/base-image.sh'))?.[1], String(newest), 'base-image.sh --node default');
  for (const f of ['deploy/Dockerfile', 'deploy/s3/Dockerfile', 'deploy/compose.yaml', 'deploy/compose.filesystem.yaml']) {
    const bases = [...read(f).matchAll(/node:(\d+)-bookworm-slim/g)].map((m) => Number(m[1]));
    t.ok(bases.length > 0 && bases.every((n) => n === newest), `${f}: node:${newest}-bookworm-slim`);
  }
  t.match(read('README.md'), new RegExp(`Node\\.js 22, 24 (and|or) ${newest}`), 'the README names it');
});

t.test('engines accepts the supported LTS lines and the node running this', async (t) => {
  for (const v of ['22.12.0', '24.0.0', `${newest}.0.0`, process.versions.node]) t.ok(accepts(v), `${v} within ${engines}`);
  for (const v of ['18.20.0', '20.18.0', '22.11.0']) t.notOk(accepts(v), `not ${v}`);
});
