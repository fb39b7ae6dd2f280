// Who may pull through a cache is the access policy's business: berth with
// token auth caches two upstreams that need credentials, a second berth (the
// Docker token flow, its own token service) and distribution 2.8.2 with Basic
// auth. Anonymous users and users without a rule on the prefix are refused
// before anything reaches an upstream (fronts count what does).
import fs from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import t from 'tap';
import { addUser, writeKey } from './helpers/auth';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { mustRun, needClients, run } from './helpers/clients';
import { startDistribution, type Distribution } from './helpers/distribution';
import { startFront, type Front } from './helpers/front';
import { buildTestImages, type TestImages } from './helpers/images';
import { freePort } from './helpers/process';

const bins = needClients(t, ['skopeo']);
if (bins) {
  const dir = tempDir();
  let upBerth: Berth;
  let upBasic: Distribution;
  let fronts: Front[];
  let berth: Berth;
  let imgs: TestImages;

  /** A config for berth with its in-process token service: users, policy, and more lines. */
  async function tokenConfig(name: string, users: Record<string, string[]>, policy: string, more: string[] = []): Promise<{ file: string; port: number }> {
    const port = await freePort();
    const usersFile = path.join(dir, `${name}-users.yml`);
    for (const [user, groups] of Object.entries(users)) await addUser(usersFile, user, `${user}-secret-1`, groups);
    fs.writeFileSync(path.join(dir, `${name}-policy.yml`), policy);
    const file = path.join(dir, `${name}.yml`);
    fs.writeFileSync(
      file,
      [
        'auth:',
        '  token:',
        `    realm: http://127.0.0.1:${port}/token`,
        `    service: ${name}`,
        `    issuer: ${name}-issuer`,
        'tokenserver:',
        `  issuer: ${name}-issuer`,
        `  key: ${writeKey(dir, name, 'ec').keyPath}`,
        `  users: ${usersFile}`,
        `  policy: ${path.join(dir, `${name}-policy.yml`)}`,
        `  services: [${name}]`,
        ...more,
        '',
      ].join('\n'),
    );
    return { file, port };
  }

  const seed = (host: string, ref: string, dest: string) => mustRun(bins.skopeo, ['copy', '--dest-tls-verify=false', '--dest-creds', 'pusher:pusher-secret-1', ref, `docker://${host}/${dest}`]);
  const inspect = (ref: string, user?: string) => run(bins.skopeo, ['inspect', '--raw', '--tls-verify=false', ...(user ? ['--creds', `${user}:${user}-secret-1`] : ['--no-creds']), `docker://${berth.host}/${ref}`]);
  const forwarded = () => fronts.reduce((n, f) => n + f.forwarded, 0);

  t.before(async () => {
    imgs = buildTestImages('auth');
    const up = await tokenConfig('upstream-berth', { pusher: [], mirror: [] }, 'admins: [pusher]\ndefault:\n  mirror: [pull]\n');
    upBerth = await startBerth({ port: up.port, config: up.file });
    const htpasswd = path.join(dir, 'htpasswd');
    fs.writeFileSync(htpasswd, ['pusher', 'mirror'].map((u) => `${u}:${bcrypt.hashSync(`${u}-secret-1`, 5)}`).join('\n') + '\n');
    upBasic = await startDistribution({ extraYaml: ['auth:', '  htpasswd:', '    realm: basic-upstream', `    path: ${htpasswd}`].join('\n') });
    await seed(upBerth.host, imgs.app.ref, 'library/app:1');
    await seed(upBerth.host, imgs.app.ref, 'library/app:2');
    await seed(upBasic.host, imgs.sibling.ref, 'tools/sibling:1');
    fronts = await Promise.all([startFront(upBerth.url), startFront(upBasic.url)]);
    const policy = [
      'rules:',
      '  - repository: "mirror/**"',
      '    grant:',
      '      group:dev: [pull]',
      '  - repository: "basic/**"',
      '    grant:',
      '      group:dev: [pull]',
      '  - repository: "library/**"',
      '    grant:',
      '      authenticated: [pull]',
      '',
    ].join('\n');
    const proxies = ['berth:', '  proxies:'];
    for (const [prefix, front, ns] of [['mirror', fronts[0], 'docker.io'], ['basic', fronts[1], 'basic.example']] as const) {
      proxies.push(`    - prefix: ${prefix}`, `      remoteurl: ${front.url}`, `      ns: ${ns}`, '      username: mirror', '      password: mirror-secret-1');
    }
    const cache = await tokenConfig('cache', { dev1: ['dev'], ops1: [] }, policy, proxies);
    berth = await startBerth({ port: cache.port, config: cache.file });
  });
  t.teardown(async () => {
    await Promise.all([berth?.stop(), upBerth?.stop(), upBasic?.stop(), ...(fronts ?? []).map((f) => f.close())]);
    imgs?.cleanup();
  });

  t.test('anonymous users and users without a rule on the prefix never reach the upstream', async (t) => {
    const anon = await inspect('mirror/library/app:1');
    t.not(anon.code, 0, 'anonymous: refused');
    t.match(anon.stderr, /unauthorized|denied/i);
    const ops = await inspect('mirror/library/app:1', 'ops1');
    t.not(ops.code, 0, 'ops1 has no rule on mirror/**: refused');
    const mapped = await inspect('library/app:1', 'ops1');
    t.not(mapped.code, 0, 'ops1 may pull library/** here, but a mirror request for it is served from mirror/, which ops1 may not pull');
    t.match(mapped.stderr, /denied/i);
    t.equal(forwarded(), 0, "nothing reached an upstream: the company's credentials were not spent");
  });

  t.test('a user the policy allows pulls through both caches', async (t) => {
    const viaToken = await inspect('mirror/library/app:1', 'dev1');
    t.equal(viaToken.code, 0, 'from a berth upstream (token flow with credentials)');
    t.equal(JSON.parse(viaToken.stdout).config.digest, imgs.app.config.digest);
    const viaBasic = await inspect('basic/tools/sibling:1', 'dev1');
    t.equal(viaBasic.code, 0, 'from a distribution upstream with Basic auth');
    t.equal(JSON.parse(viaBasic.stdout).config.digest, imgs.sibling.config.digest);
    const mirrored = await inspect('library/app:1', 'dev1');
    t.equal(mirrored.code, 0, "a mirror request (docker's form, no prefix) with pull on both names");
    const copy = path.join(dir, 'copy');
    await mustRun(bins.skopeo, ['copy', '--src-tls-verify=false', '--src-creds', 'dev1:dev1-secret-1', `docker://${berth.host}/basic/tools/sibling:1`, `oci:${copy}:s`]);
    t.ok(fs.existsSync(path.join(copy, 'blobs/sha256', imgs.sibling.layers[2].digest.slice(7))), 'blobs come through Basic auth too');
  });

  t.test("tag lists come from the upstream, paged through berth's own Link", async (t) => {
    const basic = Buffer.from('dev1:dev1-secret-1').toString('base64');
    const tok = await fetch(`${berth.url}/token?service=cache&scope=repository:mirror/library/app:pull`, { headers: { authorization: `Basic ${basic}` } });
    const headers = { authorization: `Bearer ${((await tok.json()) as { token: string }).token}` };
    const first = await fetch(`${berth.url}/v2/mirror/library/app/tags/list?n=1`, { headers });
    t.same(await first.json(), { name: 'mirror/library/app', tags: ['1'] });
    const link = first.headers.get('link')!;
    t.match(link, /^<\/v2\/mirror\/library\/app\/tags\/list\?/, 'the next page is asked of berth');
    const second = await fetch(`${berth.url}${/<([^>]+)>/.exec(link)![1]}`, { headers });
    t.same(await second.json(), { name: 'mirror/library/app', tags: ['2'] }, 'the second page, which was never pulled');
  });
}
