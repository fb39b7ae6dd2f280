// skopeo (containers/image, the library podman, buildah and CRI-O share) against the
// registry: exact round trips, multi-arch indexes, tags, deletes, shared layers.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { copiesOnDisk, getManifest, mustRun, needClients, run, type Target } from './helpers/clients';
import { clientFixture } from './helpers/engines';
import { buildTestImages, layoutRef, plainTempDir, type TestImages } from './helpers/images';

const bins = needClients(t, ['skopeo']);
if (bins) {
  const skopeo = bins.skopeo;
  let reg: Target;
  let imgs: TestImages;
  const scratch = plainTempDir('berthskopeo');
  const push = (src: string, repoTag: string, extra: string[] = []) =>
    mustRun(skopeo, ['copy', '--preserve-digests', '--dest-tls-verify=false', ...extra, src, `docker://${reg.host}/${repoTag}`]);
  const pull = (repoTag: string, dest: string, extra: string[] = []) =>
    mustRun(skopeo, ['copy', '--preserve-digests', '--src-tls-verify=false', ...extra, `docker://${reg.host}/${repoTag}`, dest]);
  const blobsIn = (dir: string) => fs.readdirSync(path.join(dir, 'blobs', 'sha256')).map((h) => `sha256:${h}`).sort();

  clientFixture(t, { scratch }, (f) => ({ reg, imgs } = f));

  t.test('copy to the registry and back keeps every digest', async (t) => {
    await push(imgs.app.ref, 'skopeo/app:1');
    const m = await getManifest(reg, 'skopeo/app', '1');
    t.equal(m.status, 200);
    t.equal(m.digest, imgs.app.manifest.digest, 'registry serves the manifest under the pushed digest');
    t.equal(m.mediaType, imgs.app.manifest.mediaType);

    const back = path.join(scratch, 'roundtrip');
    await pull('skopeo/app:1', `oci:${back}:app`);
    t.equal(layoutRef(back, 'app').digest, imgs.app.manifest.digest, 'manifest digest after the round trip');
    t.same(blobsIn(back), [...imgs.app.digests].sort(), 'manifest, config and layers came back byte-identical');
  });

  t.test('copy --all of a multi-arch index', async (t) => {
    await push(imgs.multi.ref, 'skopeo/multi:1', ['--all']);
    const idx = await getManifest(reg, 'skopeo/multi', '1');
    t.equal(idx.digest, imgs.multi.index.digest, 'index digest');
    t.equal(idx.mediaType, imgs.multi.index.mediaType);
    const platforms = (JSON.parse(idx.body.toString()) as { manifests: { digest: string; platform: { architecture: string } }[] }).manifests;
    t.same(platforms.map((p) => p.platform.architecture), ['amd64', 'arm64']);
    for (const p of platforms) {
      const child = await getManifest(reg, 'skopeo/multi', p.digest);
      t.equal(child.status, 200, `child manifest ${p.platform.architecture} is stored`);
      t.equal(child.digest, p.digest);
    }

    const back = path.join(scratch, 'multi');
    await pull('skopeo/multi:1', `oci:${back}:multi`, ['--all']);
    t.equal(layoutRef(back, 'multi').digest, imgs.multi.index.digest, 'index digest after the round trip');
    t.same(blobsIn(back), [...imgs.multi.digests].sort(), 'both platforms came back complete');
  });

  t.test('list-tags', async (t) => {
    for (const tag of ['v1', 'v2', 'latest']) await push(imgs.app.ref, `skopeo/tags:${tag}`);
    const r = await mustRun(skopeo, ['list-tags', '--tls-verify=false', `docker://${reg.host}/skopeo/tags`]);
    const out = JSON.parse(r.stdout) as { Repository: string; Tags: string[] };
    t.equal(out.Repository, `${reg.host}/skopeo/tags`);
    t.same([...out.Tags].sort(), ['latest', 'v1', 'v2']);
  });

  t.test('delete', async (t) => {
    await push(imgs.app.ref, 'skopeo/del:app');
    await push(imgs.sibling.ref, 'skopeo/del:sibling');
    await mustRun(skopeo, ['delete', '--tls-verify=false', `docker://${reg.host}/skopeo/del:app`]);
    const gone = await getManifest(reg, 'skopeo/del', 'app');
    t.equal(gone.status, 404, 'the deleted tag is gone');
    t.match(JSON.parse(gone.body.toString()), { errors: [{ code: /^MANIFEST_UNKNOWN$/ }] });
    t.equal((await getManifest(reg, 'skopeo/del', imgs.app.manifest.digest)).status, 404, 'and so is its manifest by digest');
    t.equal((await getManifest(reg, 'skopeo/del', 'sibling')).status, 200, 'the other tag stays');
    const inspect = await run(skopeo, ['inspect', '--tls-verify=false', `docker://${reg.host}/skopeo/del:app`]);
    t.not(inspect.code, 0, 'skopeo inspect fails on the deleted tag');
    const tags = JSON.parse((await mustRun(skopeo, ['list-tags', '--tls-verify=false', `docker://${reg.host}/skopeo/del`])).stdout);
    t.same(tags.Tags, ['sibling']);
  });

  t.test('shared base layers are reported present and stored once', async (t) => {
    // a variant no other subtest pushed, so "already present" can only come from this test
    const v = buildTestImages('shared');
    t.teardown(v.cleanup);
    const [base1, base2, own] = v.sibling.layers;
    // skopeo URL-encodes digests in some lines (sha256%3A...), so match the hex
    const debugLines = (out: string, digest: string) => out.split('\n').filter((l) => l.includes(digest.slice(7)));
    const present = (out: string, digest: string) => debugLines(out, digest).some((l) => /Skipping blob .*\(already present\)/.test(l));

    await push(v.app.ref, 'shared/app:1');
    // same repository: the client finds the base layers there
    const same = await push(v.sibling.ref, 'shared/app:sibling', ['--debug']);
    t.ok(present(same.stderr, base1.digest), 'base layer 1 already present in the same repository');
    t.ok(present(same.stderr, base2.digest), 'base layer 2 already present in the same repository');
    t.notOk(present(same.stderr, own.digest), 'the new layer is uploaded');
    // another repository: present through a cross-repository mount
    const other = await push(v.sibling.ref, 'shared/other:1', ['--debug']);
    for (const l of [base1, base2]) {
      t.ok(present(other.stderr, l.digest), `${l.digest} already present in another repository`);
      t.ok(debugLines(other.stderr, l.digest).some((x) => /mount=/.test(x)), 'skopeo asked for a mount');
    }
    t.match(other.stderr, /mount OK/, 'the registry granted the mount');

    for (const l of [base1, base2, own]) {
      t.equal(copiesOnDisk(reg.root, l.digest, l.size).length, 1, `${l.digest} is one file on disk`);
    }
    for (const repo of ['shared/app', 'shared/other']) {
      const r = await fetch(`${reg.url}/v2/${repo}/blobs/${base1.digest}`, { method: 'HEAD' });
      t.equal(r.status, 200, `${repo} serves the shared layer`);
    }
  });

  t.test('an image built with umoci round-trips', async (t) => {
    const u = needClients(t, ['umoci']);
    if (!u) return;
    const dir = path.join(scratch, 'umoci');
    await mustRun(u.umoci, ['init', '--layout', dir]);
    await mustRun(u.umoci, ['new', '--image', `${dir}:u`]);
    const file = path.join(scratch, 'hello.txt');
    fs.writeFileSync(file, 'hello from umoci\n');
    await mustRun(u.umoci, ['insert', '--image', `${dir}:u`, file, '/hello.txt']);
    await mustRun(u.umoci, ['config', '--image', `${dir}:u`, '--config.cmd', '/hello']);
    const built = layoutRef(dir, 'u');

    await push(`oci:${dir}:u`, 'umoci/hello:1');
    t.equal((await getManifest(reg, 'umoci/hello', '1')).digest, built.digest, 'pushed under its digest');
    const back = path.join(scratch, 'umociback');
    await pull('umoci/hello:1', `oci:${back}:u`);
    t.equal(layoutRef(back, 'u').digest, built.digest, 'same digest after the round trip');
    const stat = await mustRun(u.umoci, ['stat', '--image', `${back}:u`, '--json']);
    t.match(stat.stdout, /"history"/, 'umoci reads the pulled image');
  });
}
