// Real clients pulling through berth as a mirror, each with its own mirror
// setting unchanged: docker with `registry-mirrors` (no prefix), ctr with a
// hosts.toml mirror (?ns=), podman with a registries.conf mirror (a prefix),
// skopeo straight at a prefix. The upstream is distribution 2.8.2 behind a
// token service; nothing here can reach the real Docker Hub, so a pull that
// succeeds came through berth.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { mustRun, needClients, privatePodman } from './helpers/clients';
import { startEngines, type Engines } from './helpers/engines';
import { buildTestImages, layoutRef, plainTempDir, type TestImages } from './helpers/images';
import { startTokenUpstream, UPSTREAM_USERS, type TokenUpstream } from './helpers/upstream';

const bins = needClients(t, ['docker', 'dockerd', 'containerd', 'ctr', 'skopeo', 'podman']);
if (bins) {
  let up: TokenUpstream;
  let berth: Berth;
  let engines: Engines;
  let imgs: TestImages;
  const scratch = plainTempDir('berthmirror');
  const cached = (repo: string) => fs.existsSync(path.join(berth.root, 'docker/registry/v2/repositories', repo, '_manifests'));
  const withLogs = <T>(p: Promise<T>) =>
    p.catch((e) => {
      throw new Error(`${(e as Error).message}\n${engines.logs()}\n--- berth\n${berth.output().slice(-4000)}`);
    });

  t.before(async () => {
    up = await startTokenUpstream();
    imgs = buildTestImages('mirror');
    const seed = (ref: string, dest: string, all = false) =>
      mustRun(bins.skopeo, ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', `pusher:${UPSTREAM_USERS.pusher}`, ref, `docker://${up.host}/${dest}`]);
    await seed(imgs.app.ref, 'library/app:1');
    await seed(imgs.multi.ref, 'library/multi:1', true);
    await seed(imgs.sibling.ref, 'library/sibling:1');
    await seed(imgs.app.ref, 'library/podman:1');
    const config = path.join(tempDir(), 'config.yml');
    fs.writeFileSync(
      config,
      ['berth:', '  proxies:', ...['dockerhub:docker.io', 'ghcr:ghcr.io'].flatMap((p) => [`    - prefix: ${p.split(':')[0]}`, `      remoteurl: ${up.url}`, `      ns: ${p.split(':')[1]}`]), ''].join('\n'),
    );
    berth = await startBerth({ config });
    engines = await startEngines({ registryMirrors: [berth.url] });
  });
  t.teardown(async () => {
    await Promise.all([berth?.stop(), up?.stop(), engines?.stop()]);
    imgs?.cleanup();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  t.test('docker with registry-mirrors pulls Docker Hub names through berth, multi-arch too', async (t) => {
    const docker = (args: string[]) => withLogs(mustRun(bins.docker, args, { env: engines.env }));
    const pull = await docker(['pull', 'library/app:1']);
    t.match(pull.stdout, `Digest: ${imgs.app.manifest.digest}`, 'docker got the upstream manifest');
    t.equal((await docker(['image', 'inspect', '-f', '{{.Id}}', 'app:1'])).stdout.trim(), imgs.app.config.digest, 'image ID = config digest');
    t.ok(cached('dockerhub/library/app'), 'cached under dockerhub/');
    const arm = imgs.multi.images.find((i) => i.platform === 'linux/arm64')!;
    await docker(['pull', '--platform', 'linux/arm64', 'library/multi:1']);
    t.equal((await docker(['image', 'inspect', '-f', '{{.Id}}', 'multi:1'])).stdout.trim(), arm.config.digest, 'the arm64 child of the index');
  });

  t.test('ctr with a hosts.toml mirror: ?ns= picks the cache of that registry', async (t) => {
    const hosts = path.join(scratch, 'certs.d');
    for (const ns of ['docker.io', 'ghcr.io']) {
      fs.mkdirSync(path.join(hosts, ns), { recursive: true });
      fs.writeFileSync(path.join(hosts, ns, 'hosts.toml'), [`server = "https://${ns}"`, '', `[host."${berth.url}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'));
    }
    const ctr = (args: string[]) => withLogs(mustRun(bins.ctr, ['--namespace', 'berth-mirror', ...args], { env: engines.env }));
    await ctr(['images', 'pull', '--hosts-dir', hosts, 'docker.io/library/sibling:1']);
    t.ok(cached('dockerhub/library/sibling'), 'docker.io/library/sibling: ?ns=docker.io, cached under dockerhub/');
    // ctr resolves the tag with a HEAD, then GETs the manifest by digest: one fetch upstream (Docker Hub counts them as pulls).
    t.equal(await up.count('GET', /^\/v2\/library\/sibling\/manifests\//), 1, 'the manifest was fetched from the upstream once');
    await ctr(['images', 'pull', '--hosts-dir', hosts, '--all-platforms', 'ghcr.io/library/multi:1']);
    t.ok(cached('ghcr/library/multi'), 'ghcr.io/library/multi: ?ns=ghcr.io, cached under ghcr/');
    const ls = (await ctr(['images', 'ls'])).stdout;
    t.match(ls, new RegExp(`ghcr.io/library/multi:1\\s+\\S+\\s+${imgs.multi.index.digest}`), 'the index digest unchanged');
    for (const img of imgs.multi.images) {
      const m = await fetch(`${berth.url}/v2/ghcr/library/multi/manifests/${img.manifest.digest}`, { method: 'HEAD' });
      t.equal(m.status, 200, `${img.platform} child cached`);
    }
  });

  t.test('podman with a registries.conf mirror at a prefix', async (t) => {
    const conf = path.join(scratch, 'registries.conf');
    fs.writeFileSync(conf, ['[[registry]]', 'prefix = "docker.io"', 'location = "docker.io"', '', '[[registry.mirror]]', `location = "${berth.host}/dockerhub"`, 'insecure = true', ''].join('\n'));
    const podman = privatePodman(bins.podman, path.join(scratch, 'podman'), { ...process.env, CONTAINERS_REGISTRIES_CONF: conf });
    const pulled = await withLogs(podman(['pull', 'docker.io/library/podman:1']));
    t.equal(pulled.stdout.trim().split('\n').pop(), imgs.app.config.digest.slice(7), 'podman pulled the image');
    t.ok(cached('dockerhub/library/podman'), 'through the mirror, cached under dockerhub/');
  });

  t.test('skopeo copies a multi-arch index through a prefix, byte for byte', async (t) => {
    const dest = path.join(scratch, 'copy');
    await withLogs(mustRun(bins.skopeo, ['copy', '--all', '--src-tls-verify=false', `docker://${berth.host}/dockerhub/library/multi:1`, `oci:${dest}:multi`]));
    t.equal(layoutRef(dest, 'multi').digest, imgs.multi.index.digest, 'index digest preserved');
    for (const img of imgs.multi.images) {
      for (const d of img.digests) t.ok(fs.existsSync(path.join(dest, 'blobs/sha256', d.slice(7))), `${img.platform} ${d.slice(7, 19)}`);
    }
  });
}
