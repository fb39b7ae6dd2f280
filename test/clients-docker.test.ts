// The real Docker engine (dockerd 20.10 on its own containerd) against the registry:
// load, login, push, pull, and shared layers. Docker re-compresses layers on push,
// so images are compared by image ID (= config digest), not by layer digests.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { addUser, TEST_POLICY, writeKey } from './helpers/auth';
import { startBerth } from './helpers/berth';
import { copiesOnDisk, getManifest, mustRun, needClients, run, type Target } from './helpers/clients';
import { clientFixture, type ClientFixture, type Engines } from './helpers/engines';
import { freePort } from './helpers/process';
import { plainTempDir, type TestImage, type TestImages } from './helpers/images';

interface Manifest {
  config: { digest: string };
  layers: { digest: string; size: number }[];
}

const bins = needClients(t, ['docker', 'dockerd', 'containerd', 'skopeo', 'curl']);
if (bins) {
  let reg: Target;
  let imgs: TestImages;
  let engines: Engines;
  const scratch = plainTempDir('berthdocker');
  const docker = async (args: string[]) => {
    try {
      return await mustRun(bins.docker, args, { env: engines.env });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${engines.logs()}`);
    }
  };
  /** docker load a docker-archive made by skopeo from the OCI test layout. */
  const load = async (img: TestImage, name: string) => {
    const tar = path.join(scratch, `${img.tag}.tar`);
    await mustRun(bins.skopeo, ['copy', img.ref, `docker-archive:${tar}:${name}`]);
    const out = await docker(['load', '--input', tar]);
    fs.rmSync(tar);
    return out;
  };
  const imageId = async (ref: string) => (await docker(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
  const manifest = async (repo: string, ref: string) => {
    const m = await getManifest(reg, repo, ref);
    if (m.status !== 200) throw new Error(`GET manifest ${repo}:${ref}: ${m.status} ${m.body}`);
    return { digest: m.digest, mediaType: m.mediaType, ...(JSON.parse(m.body.toString()) as Manifest) };
  };
  const count = (out: string, re: RegExp) => out.split('\n').filter((l) => re.test(l)).length;

  clientFixture(t, { engines: {}, scratch }, (f) => ({ reg, imgs, engines } = f as Required<ClientFixture>));

  t.test('docker load of a skopeo docker-archive', async (t) => {
    const out = await load(imgs.app, 'berth/app:1');
    t.match(out.stdout, 'Loaded image: berth/app:1');
    t.equal(await imageId('berth/app:1'), imgs.app.config.digest, 'image ID = config digest of the test image');
  });

  t.test('docker login', async (t) => {
    // berth without auth answers /v2/ with 200, which docker takes as a valid login
    const out = await docker(['login', '--username', 'tester', '--password', 'not-checked', reg.host]);
    t.match(out.stdout, 'Login Succeeded');
    const cfg = JSON.parse(fs.readFileSync(path.join(engines.env.DOCKER_CONFIG!, 'config.json'), 'utf8'));
    t.ok(cfg.auths?.[reg.host], 'credentials recorded for the registry host');
    const logout = await docker(['logout', reg.host]);
    t.match(logout.stdout, `Removing login credentials for ${reg.host}`);
  });

  t.test('docker push and pull', async (t) => {
    const ref = `${reg.host}/docker/app:1`;
    await docker(['tag', 'berth/app:1', ref]);
    const push = await docker(['push', ref]);
    t.equal(count(push.stdout, /: Pushed$/), imgs.app.layers.length, 'every layer pushed');
    const m = await manifest('docker/app', '1');
    t.equal(m.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    t.equal(m.config.digest, imgs.app.config.digest, 'the manifest carries the original config');
    t.match(push.stdout, `1: digest: ${m.digest} size:`, 'docker reports the digest the registry stores');

    await docker(['rmi', ref, 'berth/app:1']);
    const pull = await docker(['pull', ref]);
    t.match(pull.stdout, `Digest: ${m.digest}`);
    t.match(pull.stdout, `Downloaded newer image for ${ref}`);
    t.equal(await imageId(ref), imgs.app.config.digest, 'pulled image ID = original config digest');
  });

  t.test('docker pull of a multi-arch index picks linux/amd64', async (t) => {
    await mustRun(bins.skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', imgs.multi.ref, `docker://${reg.host}/docker/multi:1`]);
    const ref = `${reg.host}/docker/multi:1`;
    const pull = await docker(['pull', '--platform', 'linux/amd64', ref]);
    t.match(pull.stdout, `Digest: ${imgs.multi.index.digest}`, 'docker resolved the tag to the index');
    const amd64 = imgs.multi.images.find((i) => i.platform === 'linux/amd64')!;
    t.equal(await imageId(ref), amd64.config.digest, 'image ID = the amd64 config digest');
  });

  t.test('shared base layers: already exists, mounted, stored once', async (t) => {
    await load(imgs.sibling, 'berth/sibling:1');
    const same = `${reg.host}/docker/app:sibling`;
    await docker(['tag', 'berth/sibling:1', same]);
    const p1 = await docker(['push', same]);
    t.equal(count(p1.stdout, /: Layer already exists$/), 2, 'both base layers already exist in the repository');
    t.equal(count(p1.stdout, /: Pushed$/), 1, 'only the new layer is uploaded');

    const other = `${reg.host}/docker/other:1`;
    await docker(['tag', 'berth/sibling:1', other]);
    const p2 = await docker(['push', other]);
    t.equal(count(p2.stdout, /: Mounted from docker\/app$/), imgs.sibling.layers.length, 'every layer mounted from docker/app');
    t.equal(count(p2.stdout, /: Pushed$/), 0, 'nothing uploaded again');

    const [a, s, o] = await Promise.all([manifest('docker/app', '1'), manifest('docker/app', 'sibling'), manifest('docker/other', '1')]);
    t.same(s.layers.slice(0, 2), a.layers.slice(0, 2), 'sibling references the same compressed base layers');
    t.same(o.layers, s.layers);
    for (const l of s.layers) t.equal(copiesOnDisk(reg.root, l.digest, l.size).length, 1, `${l.digest} is one file on disk`);
  });

  t.test('docker login, push and pull with token auth', async (t) => {
    // berth with its in-process token service; policy: users push to their own namespace
    const dir = path.join(scratch, 'auth');
    fs.mkdirSync(dir);
    const users = path.join(dir, 'users.yml');
    await addUser(users, 'alice', 'alice-secret-1');
    fs.writeFileSync(path.join(dir, 'policy.yml'), TEST_POLICY);
    const port = await freePort();
    const config = path.join(dir, 'config.yml');
    fs.writeFileSync(
      config,
      [
        'version: 0.1',
        'auth:',
        '  token:',
        `    realm: http://127.0.0.1:${port}/token`,
        '    service: berth-docker',
        '    issuer: berth-docker-test',
        'tokenserver:',
        '  issuer: berth-docker-test',
        `  key: ${writeKey(dir, 'signer').keyPath}`,
        `  users: ${users}`,
        `  policy: ${path.join(dir, 'policy.yml')}`,
        '  services: [berth-docker]',
        '',
      ].join('\n'),
    );
    const authReg = await startBerth({ port, config });
    t.teardown(async () => {
      await authReg.stop();
      fs.rmSync(authReg.root, { recursive: true, force: true });
    });
    const host = authReg.host;
    const tryDocker = (args: string[]) => run(bins.docker, args, { env: engines.env });

    const bad = await tryDocker(['login', '--username', 'alice', '--password', 'wrong-password', host]);
    t.not(bad.code, 0, 'a wrong password is refused');
    t.match(bad.stderr, /unauthorized|incorrect/i);
    const login = await docker(['login', '--username', 'alice', '--password', 'alice-secret-1', host]);
    t.match(login.stdout, 'Login Succeeded');

    const ref = `${host}/alice/app:1`;
    await docker(['tag', 'berth/sibling:1', ref]);
    const push = await docker(['push', ref]);
    t.equal(count(push.stdout, /: Pushed$/), imgs.sibling.layers.length, 'alice pushes to her namespace');
    await docker(['tag', 'berth/sibling:1', `${host}/bob/app:1`]);
    const denied = await tryDocker(['push', `${host}/bob/app:1`]);
    t.not(denied.code, 0, "alice can't push to bob's namespace");
    t.match(denied.stderr, /denied|unauthorized/i);

    await docker(['rmi', ref, `${host}/bob/app:1`]);
    await docker(['logout', host]);
    const anon = await tryDocker(['pull', ref]);
    t.not(anon.code, 0, 'anonymous pull is refused');
    t.match(anon.stderr, /denied|unauthorized/i);
    await docker(['login', '--username', 'alice', '--password', 'alice-secret-1', host]);
    await docker(['pull', ref]);
    t.equal(await imageId(ref), imgs.sibling.config.digest, 'alice pulls it back: same image ID');
  });
}
