// Content management: deleting tags, manifests and blobs (or, with deletes
// turned off, being refused with UNSUPPORTED and losing nothing).
import { describe } from './client';
import { INVALID_REFERENCE, MT, artifact, descriptor, imageConfig, ociManifest, randomBlob, unknownDigest, EMPTY } from './content';
import { expectBlob, expectManifest } from './pull';
import { SetupError, type Suite } from './suite';

const C = 'management';

export async function management(s: Suite): Promise<void> {
  const repo = s.repo('delete');
  const layer = randomBlob(512);
  const config = imageConfig([layer]);
  const m = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)]);
  const other = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)], { annotations: { 'org.berth.kind': 'other' } });
  // The same content in a second repository: deleting from one must not touch the other.
  const twin = s.repo('delete-twin');
  const ready = await s.check(C, 'set-up: push a manifest under tags "one" and "two", another under "three", and the first to a second repository', async () => {
    await s.pushBlob(repo, layer);
    await s.pushBlob(repo, config);
    await s.pushManifest(repo, 'one', m);
    await s.pushManifest(repo, 'two', m);
    await s.pushManifest(repo, 'three', other);
    await s.pushBlob(twin, layer);
    await s.pushBlob(twin, config);
    await s.pushManifest(twin, 'one', m);
  });
  const need = () => {
    if (!ready) throw new SetupError('content could not be pushed');
  };
  const tags = async () => {
    const res = await s.req('GET', `/v2/${repo}/tags/list`);
    return res.status === 200 ? ((JSON.parse(res.body.toString()).tags ?? []) as string[]) : [];
  };

  if (s.opts.deletesDisabled) {
    await s.check(C, 'DELETE manifest with deletes disabled: 405 UNSUPPORTED, manifest kept', async (e) => {
      need();
      e.error(await s.req('DELETE', `/v2/${repo}/manifests/${m.digest}`), [405, 400], 'UNSUPPORTED');
      expectManifest(e, await s.getManifest(repo, 'one'), m);
    });
    await s.check(C, 'DELETE tag with deletes disabled: 405 UNSUPPORTED, tag kept', async (e) => {
      need();
      e.error(await s.req('DELETE', `/v2/${repo}/manifests/two`), [405, 400], 'UNSUPPORTED');
      expectManifest(e, await s.getManifest(repo, 'two'), m);
    });
    await s.check(C, 'DELETE blob with deletes disabled: 405 UNSUPPORTED, blob kept', async (e) => {
      need();
      e.error(await s.req('DELETE', `/v2/${repo}/blobs/${layer.digest}`), 405, 'UNSUPPORTED');
      expectBlob(e, await s.req('GET', `/v2/${repo}/blobs/${layer.digest}`, { follow: true }), layer);
    });
    return;
  }

  await s.check(C, 'DELETE by tag: 202, removes only that tag', async (e) => {
    need();
    const res = await s.req('DELETE', `/v2/${repo}/manifests/one`);
    // Tag deletion is optional; a registry without it must say so with 400 or 405.
    if (res.status === 400 || res.status === 405) return e.fail('MAY', `${describe(res)}: tag deletion not supported (${res.status})`);
    e.status(res, 202);
    e.error(await s.getManifest(repo, 'one'), 404, 'MANIFEST_UNKNOWN');
    expectManifest(e, await s.getManifest(repo, 'two'), m);
    expectManifest(e, await s.getManifest(repo, m.digest), m);
    const left = await tags();
    e.that(!left.includes('one') && left.includes('two'), 'MUST', `tags after deleting "one": ${JSON.stringify(left)}`);
  });

  await s.check(C, 'DELETE by digest: 202, removes the manifest and its tags', async (e) => {
    need();
    const res = await s.req('DELETE', `/v2/${repo}/manifests/${m.digest}`);
    e.status(res, 202);
    e.error(await s.getManifest(repo, m.digest), 404, 'MANIFEST_UNKNOWN');
    e.error(await s.getManifest(repo, 'two'), 404, 'MANIFEST_UNKNOWN');
    expectManifest(e, await s.getManifest(repo, 'three'), other);
    const left = await tags();
    e.that(!left.includes('two') && left.includes('three'), 'MUST', `tags after deleting ${m.digest}: ${JSON.stringify(left)}`);
  });

  await s.check(C, 'the same manifest in another repository survives the delete', async (e) => {
    need();
    expectManifest(e, await s.getManifest(twin, 'one'), m);
    expectManifest(e, await s.getManifest(twin, m.digest), m);
  });

  await s.check(C, 'a deleted manifest can be pushed again and is served', async (e) => {
    need();
    const res = await s.putManifest(repo, 'again', m);
    e.status(res, 201);
    expectManifest(e, await s.getManifest(repo, m.digest), m);
    expectManifest(e, await s.getManifest(repo, 'again'), m);
  });

  await s.check(C, 'DELETE an unknown manifest: 404 MANIFEST_UNKNOWN', async (e) => {
    e.error(await s.req('DELETE', `/v2/${repo}/manifests/${unknownDigest()}`), 404, 'MANIFEST_UNKNOWN');
  });

  await s.check(C, 'DELETE manifest by a reference that is neither a tag nor a digest: 404 MANIFEST_UNKNOWN', async (e) => {
    e.error(await s.req('DELETE', `/v2/${repo}/manifests/${INVALID_REFERENCE}`), 404, 'MANIFEST_UNKNOWN');
  });

  await s.check(C, 'DELETE blob: 202, then 404 BLOB_UNKNOWN', async (e) => {
    need();
    const res = await s.req('DELETE', `/v2/${repo}/blobs/${layer.digest}`);
    e.status(res, 202);
    e.error(await s.req('GET', `/v2/${repo}/blobs/${layer.digest}`), 404, 'BLOB_UNKNOWN');
  });

  await s.check(C, 'the same blob in another repository survives the delete', async (e) => {
    need();
    expectBlob(e, await s.req('GET', `/v2/${twin}/blobs/${layer.digest}`, { follow: true }), layer);
  });

  await s.check(C, 'a deleted blob can be uploaded again and is served', async (e) => {
    need();
    await s.pushBlob(repo, layer);
    expectBlob(e, await s.req('GET', `/v2/${repo}/blobs/${layer.digest}`, { follow: true }), layer);
  });

  await s.check(C, 'DELETE an unknown blob: 404 BLOB_UNKNOWN', async (e) => {
    e.error(await s.req('DELETE', `/v2/${repo}/blobs/${unknownDigest()}`), 404, 'BLOB_UNKNOWN');
  });

  await s.check(C, 'a deleted referrer leaves the referrers list', async (e) => {
    const subject = descriptor(MT.ociManifest, randomBlob(10));
    const payload = randomBlob(20);
    await s.pushBlob(repo, payload);
    await s.pushBlob(repo, EMPTY);
    const ref = artifact('application/vnd.berth.conformance.signature', [descriptor('application/octet-stream', payload)], { subject });
    await s.pushManifest(repo, ref.digest, ref);
    const listed = async () => {
      const res = await s.req('GET', `/v2/${repo}/referrers/${subject.digest}`);
      return res.status === 200 ? ((JSON.parse(res.body.toString()).manifests ?? []) as { digest: string }[]) : undefined;
    };
    const before = await listed();
    if (!before) return e.fail('MAY', 'the registry does not implement the referrers API');
    e.that(before.some((d) => d.digest === ref.digest), 'MUST', `referrer ${ref.digest} not listed before the delete`);
    e.status(await s.req('DELETE', `/v2/${repo}/manifests/${ref.digest}`), 202);
    const after = (await listed()) ?? [];
    e.that(!after.some((d) => d.digest === ref.digest), 'MUST', `referrer ${ref.digest} still listed after its delete`);
  });
}
