// containerd's own client, ctr (the pull path of Kubernetes nodes), against the
// registry over plain HTTP. Images are seeded with skopeo; ctr keeps content as-is,
// so digests must survive a pull and a push unchanged.
import t from 'tap';
import { getManifest, mustRun, needClients, type Target } from './helpers/clients';
import { clientFixture, type ClientFixture, type Engines } from './helpers/engines';
import type { TestImages } from './helpers/images';

const bins = needClients(t, ['containerd', 'ctr', 'skopeo', 'curl']);
if (bins) {
  let reg: Target;
  let imgs: TestImages;
  let engines: Engines;
  const ctr = async (args: string[]) => {
    try {
      return await mustRun(bins.ctr, ['--namespace', 'berth-test', ...args], { env: engines.env });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${engines.logs()}`);
    }
  };
  const seed = (ref: string, repoTag: string, all = false) =>
    mustRun(bins.skopeo, ['copy', '--preserve-digests', '--dest-tls-verify=false', ...(all ? ['--all'] : []), ref, `docker://${reg.host}/${repoTag}`]);
  /** The digest ctr recorded for an image, from `ctr images ls`. */
  const localDigest = async (ref: string) => {
    const ls = await ctr(['images', 'ls']);
    const row = ls.stdout.split('\n').find((l) => l.startsWith(ref + ' '));
    return row?.split(/\s+/).find((f) => f.startsWith('sha256:'));
  };

  clientFixture(t, { engines: { docker: false } }, (f) => ({ reg, imgs, engines } = f as Required<ClientFixture>));

  t.test('ctr pull and push keep the digest', async (t) => {
    await seed(imgs.app.ref, 'ctr/app:1');
    const src = `${reg.host}/ctr/app:1`;
    const pull = await ctr(['images', 'pull', '--plain-http', src]);
    t.match(pull.stdout, /done/, 'pull finished (content fetched and unpacked)');
    t.equal(await localDigest(src), imgs.app.manifest.digest, 'ctr resolved the tag to the pushed manifest');

    const dst = `${reg.host}/ctr/copy:1`;
    await ctr(['images', 'tag', src, dst]);
    await ctr(['images', 'push', '--plain-http', dst]);
    const m = await getManifest(reg, 'ctr/copy', '1');
    t.equal(m.digest, imgs.app.manifest.digest, 'pushed manifest has the same digest');
    for (const l of imgs.app.layers) {
      const r = await fetch(`${reg.url}/v2/ctr/copy/blobs/${l.digest}`, { method: 'HEAD' });
      t.equal(r.status, 200, `layer ${l.digest} is in the new repository`);
    }
  });

  t.test('ctr pull --all-platforms and push of a multi-arch index', async (t) => {
    await seed(imgs.multi.ref, 'ctr/multi:1', true);
    const src = `${reg.host}/ctr/multi:1`;
    await ctr(['images', 'pull', '--plain-http', '--all-platforms', src]);
    t.equal(await localDigest(src), imgs.multi.index.digest, 'ctr resolved the tag to the index');

    const dst = `${reg.host}/ctr/multicopy:1`;
    await ctr(['images', 'tag', src, dst]);
    await ctr(['images', 'push', '--plain-http', dst]);
    t.equal((await getManifest(reg, 'ctr/multicopy', '1')).digest, imgs.multi.index.digest, 'index digest unchanged');
    for (const img of imgs.multi.images) {
      const child = await getManifest(reg, 'ctr/multicopy', img.manifest.digest);
      t.equal(child.status, 200, `platform manifest ${img.manifest.digest} pushed`);
    }
  });
}
