// Real clients against berth on S3 (Swift s3api): skopeo round trips with
// identical digests (an image and a multi-arch index) and a podman push/pull,
// with blobs both redirected to presigned URLs and streamed by the registry.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, type Berth } from './helpers/berth';
import { getManifest, mustRun, needClients, privatePodman, type Target } from './helpers/clients';
import { buildTestImages, plainTempDir, type TestImages } from './helpers/images';
import { startS3, type S3Server } from './helpers/s3';

const bins = needClients(t, ['skopeo', 'podman']);
if (bins) {
  let s3: S3Server;
  let imgs: TestImages;
  const scratch = plainTempDir('berths3clients');
  const podman = privatePodman(bins.podman, path.join(scratch, 'podman'));

  t.before(async () => {
    s3 = await startS3();
    imgs = buildTestImages('s3');
  });
  t.teardown(async () => {
    await s3?.stop();
    imgs?.cleanup();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  /** berth on the shared bucket, under its own root directory. */
  async function berthOnS3(root: string, redirect: boolean): Promise<Target> {
    const b: Berth = await startBerth({
      env: s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: root, REGISTRY_STORAGE_REDIRECT_DISABLE: String(!redirect) }),
    });
    const stop = async () => void (await b.stop());
    t.teardown(stop);
    return { kind: 'berth', host: b.host, url: b.url, root: b.root, stop };
  }

  for (const redirect of [true, false]) {
    t.test(`skopeo copy to berth on S3 and back keeps every digest (redirects ${redirect ? 'on' : 'off'})`, async (t) => {
      const reg = await berthOnS3(`/clients-${redirect}`, redirect);
      const dst = `docker://${reg.host}/s3/app:1`;
      await mustRun(bins.skopeo, ['copy', '--preserve-digests', '--dest-tls-verify=false', imgs.app.ref, dst]);
      const m = await getManifest(reg, 's3/app', '1');
      t.equal(m.status, 200);
      t.equal(m.digest, imgs.app.manifest.digest, 'manifest digest unchanged');
      const back = path.join(scratch, `back-${redirect}`);
      await mustRun(bins.skopeo, ['copy', '--preserve-digests', '--src-tls-verify=false', dst, `oci:${back}:x`]);
      for (const d of imgs.app.digests) {
        t.ok(fs.existsSync(path.join(back, 'blobs', 'sha256', d.slice(7))), `${d} pulled back`);
      }

      await mustRun(bins.skopeo, ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', imgs.multi.ref, `docker://${reg.host}/s3/multi:1`]);
      const idx = await getManifest(reg, 's3/multi', '1');
      t.equal(idx.digest, imgs.multi.index.digest, 'index digest unchanged');
      for (const p of imgs.multi.images) {
        t.equal((await getManifest(reg, 's3/multi', p.manifest.digest)).status, 200, `${p.platform} child stored`);
      }
    });
  }

  t.test('podman push and pull through berth on S3 keep the image ID', async (t) => {
    const reg = await berthOnS3('/clients-podman', true);
    await podman(['pull', imgs.app.ref]);
    const id = imgs.app.config.digest.slice(7);
    await podman(['push', '--tls-verify=false', id, `docker://${reg.host}/s3/podman:1`]);
    await podman(['rmi', '--all', '--force']);
    await podman(['pull', '--tls-verify=false', `docker://${reg.host}/s3/podman:1`]);
    const ids = (await podman(['images', '--no-trunc', '--format', '{{.ID}}'])).stdout;
    t.match(ids, id, 'the pulled image has the pushed image ID');
  });
}
