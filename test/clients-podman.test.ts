// podman and buildah (rootful, a private vfs store per tool) against the registry.
// Both re-pack layers from their local store on push, so images are compared by
// their image IDs (config digests), which survive any re-compression.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { containersStorageArgs, getManifest, mustRun, needClients, privatePodman, type Target } from './helpers/clients';
import { clientFixture } from './helpers/engines';
import { plainTempDir, type TestImages } from './helpers/images';

const bins = needClients(t, ['podman', 'buildah', 'skopeo']);
if (bins) {
  let reg: Target;
  let imgs: TestImages;
  const scratch = plainTempDir('berthpodman');
  const podman = privatePodman(bins.podman, path.join(scratch, 'podman'));
  const buildah = (args: string[]) => mustRun(bins.buildah, [...containersStorageArgs(path.join(scratch, 'buildah')), ...args]);
  const configDigest = async (repo: string, ref: string) => {
    const m = await getManifest(reg, repo, ref);
    if (m.status !== 200) throw new Error(`GET manifest ${repo}:${ref}: ${m.status} ${m.body}`);
    return (JSON.parse(m.body.toString()) as { config: { digest: string } }).config.digest;
  };

  clientFixture(t, { scratch }, (f) => ({ reg, imgs } = f));

  t.test('podman push and pull', async (t) => {
    await podman(['pull', imgs.app.ref]);
    const id = imgs.app.config.digest.slice(7);
    await podman(['push', '--tls-verify=false', id, `docker://${reg.host}/podman/app:1`]);
    t.equal(await configDigest('podman/app', '1'), imgs.app.config.digest, 'the pushed manifest carries the image config');

    await podman(['rmi', '--all', '--force']);
    const pulled = await podman(['pull', '--tls-verify=false', `${reg.host}/podman/app:1`]);
    t.equal(pulled.stdout.trim().split('\n').pop(), id, 'podman pull prints the same image ID');
    const inspect = await podman(['image', 'inspect', '--format', '{{.Id}}', `${reg.host}/podman/app:1`]);
    t.equal(inspect.stdout.trim(), id, 'the pulled image has the original config digest');
  });

  t.test('podman pull picks the requested platform from an index', async (t) => {
    await mustRun(bins.skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', imgs.multi.ref, `docker://${reg.host}/podman/multi:1`]);
    for (const img of imgs.multi.images) {
      const [os, arch] = img.platform.split('/');
      const pulled = await podman(['pull', '--tls-verify=false', '--os', os, '--arch', arch, `${reg.host}/podman/multi:1`]);
      t.equal(pulled.stdout.trim().split('\n').pop(), img.config.digest.slice(7), `${img.platform} image ID`);
    }
  });

  t.test('podman manifest push of a Docker manifest list (v2s2)', async (t) => {
    await podman(['manifest', 'create', 'berth-list']);
    await podman(['manifest', 'add', '--all', 'berth-list', imgs.multi.ref]);
    await podman(['manifest', 'push', '--all', '--format', 'v2s2', '--tls-verify=false', 'berth-list', `docker://${reg.host}/podman/list:1`]);
    const list = await getManifest(reg, 'podman/list', '1');
    t.equal(list.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json', 'stored and served as a Docker manifest list');
    const entries = (JSON.parse(list.body.toString()) as { manifests: { digest: string; mediaType: string; platform: { os: string; architecture: string } }[] }).manifests;
    t.equal(entries.length, imgs.multi.images.length);
    for (const e of entries) {
      const want = imgs.multi.images.find((i) => i.platform === `${e.platform.os}/${e.platform.architecture}`);
      const child = await getManifest(reg, 'podman/list', e.digest);
      t.equal(child.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', `${e.platform.architecture}: converted to Docker schema 2`);
      t.equal(await configDigest('podman/list', e.digest), want?.config.digest, `${e.platform.architecture}: same image config`);
    }
  });

  t.test('buildah builds from scratch and pushes', async (t) => {
    const ctx = path.join(scratch, 'ctx');
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, 'hello.txt'), 'hello from buildah\n');
    const ctr = (await buildah(['from', 'scratch'])).stdout.trim();
    await buildah(['copy', ctr, path.join(ctx, 'hello.txt'), '/hello.txt']);
    await buildah(['config', '--cmd', '/hello', '--label', 'berth.test=buildah', ctr]);
    const iidfile = path.join(scratch, 'iid');
    await buildah(['commit', '--iidfile', iidfile, ctr, 'berth-built']);
    await buildah(['rm', ctr]);
    const id = fs.readFileSync(iidfile, 'utf8').trim().replace(/^sha256:/, '');

    const digestfile = path.join(scratch, 'digest');
    await buildah(['push', '--tls-verify=false', '--digestfile', digestfile, 'berth-built', `docker://${reg.host}/buildah/scratch:1`]);
    const m = await getManifest(reg, 'buildah/scratch', '1');
    t.equal(m.status, 200);
    t.equal(m.digest, fs.readFileSync(digestfile, 'utf8').trim(), 'registry digest = the digest buildah pushed');
    t.equal(await configDigest('buildah/scratch', '1'), `sha256:${id}`, 'the manifest points at the built image config');

    // and another tool's store reads it back
    const pulled = await podman(['pull', '--tls-verify=false', `${reg.host}/buildah/scratch:1`]);
    t.equal(pulled.stdout.trim().split('\n').pop(), id, 'podman pulls the buildah image with the same ID');
  });
}
