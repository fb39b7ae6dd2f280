// The pull-through cache over plain HTTP: berth mirrors an upstream shaped like
// Docker Hub (CNCF distribution 2.8.2 behind a token service), anonymously and
// with credentials, beside hosted repositories. What reached the upstream is
// counted in its access log.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { runCli } from './helpers/cli';
import { mustRun, needClients } from './helpers/clients';
import { buildTestImages, type TestImages } from './helpers/images';
import { GeneratedBlob, MANIFEST_ACCEPT, sha256 } from './helpers/oci-client';
import { scrape } from './helpers/ops-client';
import { blob, getBytes, pushImage } from './helpers/registry-client';
import { startTokenUpstream, UPSTREAM_USERS, type TokenUpstream } from './helpers/upstream';

const bins = needClients(t, ['skopeo']);
if (bins) {
  let up: TokenUpstream;
  let berth: Berth;
  let imgs: TestImages;
  let config: string;
  const seed = (ref: string, dest: string, all = false) =>
    mustRun(bins.skopeo, ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', `pusher:${UPSTREAM_USERS.pusher}`, ref, `docker://${up.host}/${dest}`]);
  const manifest = async (name: string, ref: string, accept = MANIFEST_ACCEPT) => {
    const res = await fetch(`${berth.url}/v2/${name}/manifests/${ref}`, { headers: { accept } });
    return { status: res.status, digest: res.headers.get('docker-content-digest'), body: Buffer.from(await res.arrayBuffer()) };
  };
  const errorCode = async (res: Response) => ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0];

  t.before(async () => {
    up = await startTokenUpstream();
    imgs = buildTestImages('proxy');
    await seed(imgs.app.ref, 'library/app:1');
    await seed(imgs.multi.ref, 'library/multi:1', true);
    await seed(imgs.sibling.ref, 'private/app:1');
    await seed(imgs.sibling.ref, 'library/cold:1');
    await seed(imgs.sibling.ref, 'library/cold:2');
    const dir = tempDir();
    config = path.join(dir, 'config.yml');
    fs.writeFileSync(
      config,
      [
        'berth:',
        '  proxies:',
        '    - prefix: dockerhub',
        `      remoteurl: ${up.url}`,
        '      ns: docker.io',
        '      ttl: 1s',
        '    - prefix: corp',
        `      remoteurl: ${up.url}`,
        '      username: mirror',
        `      password: ${UPSTREAM_USERS.mirror}`,
        '',
      ].join('\n'),
    );
    berth = await startBerth({ config });
  });
  t.teardown(async () => {
    await Promise.all([berth?.stop(), up?.stop()]);
    imgs?.cleanup();
  });

  t.test('a tag is fetched on first use, then served from the store; blobs stream once', async (t) => {
    const m = await manifest('dockerhub/library/app', '1');
    t.equal(m.status, 200);
    t.equal(m.digest, imgs.app.manifest.digest, 'the upstream manifest, digest unchanged');
    t.equal(sha256(m.body), imgs.app.manifest.digest, 'byte-identical');
    const tagRequests = async () => (await up.count('GET', /^\/v2\/library\/app\/manifests\/1$/)) + (await up.count('HEAD', /^\/v2\/library\/app\/manifests\/1$/));
    const before = await tagRequests();
    await manifest('dockerhub/library/app', '1');
    t.equal(await tagRequests(), before, 'within the ttl the tag is not checked');
    for (const d of [imgs.app.config.digest, ...imgs.app.layers.map((l) => l.digest)]) {
      const b = await getBytes(berth.url, `/v2/dockerhub/library/app/blobs/${d}`);
      t.equal(b.status, 200);
      t.equal(sha256(b.bytes), d, `blob ${d.slice(7, 19)} byte-identical`);
    }
    const blobGets = () => up.count('GET', /^\/v2\/library\/app\/blobs\//);
    const blobs = 1 + imgs.app.layers.length;
    t.equal(await blobGets(), blobs, 'each blob fetched from the upstream once');
    for (const d of imgs.app.layers.map((l) => l.digest)) {
      const b = await getBytes(berth.url, `/v2/dockerhub/library/app/blobs/${d}`);
      t.equal(sha256(b.bytes), d);
    }
    t.equal(await blobGets(), blobs, 'pulled again: served from the store');
    const ranged = await fetch(`${berth.url}/v2/dockerhub/library/app/blobs/${imgs.app.layers[0].digest}`, { headers: { range: 'bytes=10-19' } });
    t.equal(ranged.status, 206, 'ranges work');
    t.equal((await ranged.arrayBuffer()).byteLength, 10);

    await new Promise((r) => setTimeout(r, 1100));
    const heads = await up.count('HEAD', /^\/v2\/library\/app\/manifests\/1$/);
    const gets = await up.count('GET', /^\/v2\/library\/app\/manifests\/1$/);
    t.equal((await manifest('dockerhub/library/app', '1')).digest, imgs.app.manifest.digest);
    t.equal(await up.count('HEAD', /^\/v2\/library\/app\/manifests\/1$/), heads + 1, 'after the ttl: one HEAD');
    t.equal(await up.count('GET', /^\/v2\/library\/app\/manifests\/1$/), gets, 'and no GET (the digest did not change)');
  });

  t.test('pulls of one blob overlapping its fetch in every way cause one upstream fetch', async (t) => {
    const repo = 'library/burst';
    const pusher = await up.pusher([repo]);
    const layer = await pusher.pushBlob(repo, new GeneratedBlob('burst', 1 << 20));
    pusher.close();
    const url = `${berth.url}/v2/dockerhub/${repo}/blobs/${layer.digest}`;
    // A request every 5 ms from before the fetch starts until after the blob is stored: some join the
    // stream, some (ranges, late comers) wait for the store, some arrive as the fill commits and ends.
    const pulls: Promise<{ status: number; digest: string; range: boolean }>[] = [];
    let firstDone = 0;
    // A pull begun after the first one ended waits for the blob to be stored (or finds it there).
    let stored = 0;
    for (let i = 0; i < 300 && !(stored && Date.now() > stored + 50); i++) {
      const range = i % 7 === 3;
      const begun = Date.now();
      const p = fetch(url, { headers: range ? { range: 'bytes=0-' } : {} }).then(async (res) => ({ status: res.status, digest: sha256(Buffer.from(await res.arrayBuffer())), range }));
      void p.then(
        () => {
          if (i === 0) firstDone = Date.now();
          else if (firstDone && begun > firstDone) stored ||= Date.now();
        },
        () => undefined, // Promise.all below reports it
      );
      pulls.push(p);
      await new Promise((r) => setTimeout(r, 5));
    }
    const results = await Promise.all(pulls);
    t.ok(stored, `${results.length} pulls, the last ones after the blob was stored`);
    t.same(
      results.filter((r) => r.status !== (r.range ? 206 : 200) || r.digest !== layer.digest),
      [],
      'every pull whole and byte-identical',
    );
    t.equal(await up.count('GET', new RegExp(`^/v2/${repo}/blobs/`)), 1, 'the blob was fetched from the upstream once');
  });

  t.test('a HEAD of an uncached blob asks the upstream; a range of one fetches it whole', async (t) => {
    const layer = imgs.sibling.layers[2];
    const fetches = () => up.count('GET', new RegExp(`^/v2/library/cold/blobs/${layer.digest}$`));
    const head = await fetch(`${berth.url}/v2/dockerhub/library/cold/blobs/${layer.digest}`, { method: 'HEAD' });
    t.equal(head.status, 200);
    t.equal(head.headers.get('content-length'), String(layer.size), "the upstream's size");
    t.equal(await fetches(), 0, 'nothing fetched for a HEAD');
    const ranged = await fetch(`${berth.url}/v2/dockerhub/library/cold/blobs/${layer.digest}`, { headers: { range: 'bytes=5-14' } });
    t.equal(ranged.status, 206);
    t.equal(ranged.headers.get('content-range'), `bytes 5-14/${layer.size}`);
    const whole = fs.readFileSync(path.join(imgs.dir, 'blobs/sha256', layer.digest.slice(7)));
    t.same(Buffer.from(await ranged.arrayBuffer()), whole.subarray(5, 15), 'the right bytes');
    t.equal(await fetches(), 1, 'the blob was fetched (whole) and cached');
  });

  t.test("tags: the upstream's list, as distribution's proxy answers", async (t) => {
    const all = (await (await fetch(`${berth.url}/v2/dockerhub/library/cold/tags/list`)).json()) as { name: string; tags: string[] };
    t.same({ ...all, tags: all.tags.sort() }, { name: 'dockerhub/library/cold', tags: ['1', '2'] }, 'both tags, though none was pulled');
  });

  t.test('metrics: hits, misses and bytes per upstream', async (t) => {
    const m = await scrape(`${berth.url}/metrics`);
    const v = (k: string) => m.get(k) ?? 0;
    t.ok(v('berth_proxy_lookups_total{upstream="dockerhub",kind="manifest",result="miss"}') >= 1, 'manifest misses');
    t.ok(v('berth_proxy_lookups_total{upstream="dockerhub",kind="manifest",result="hit"}') >= 1, 'manifest hits');
    t.ok(v('berth_proxy_lookups_total{upstream="dockerhub",kind="manifest",result="revalidated"}') >= 1, 'tags checked after the ttl');
    t.ok(v('berth_proxy_lookups_total{upstream="dockerhub",kind="blob",result="miss"}') >= 4, 'blob misses');
    t.ok(v('berth_proxy_lookups_total{upstream="dockerhub",kind="blob",result="hit"}') >= 3, 'blob hits');
    const blobBytes = [imgs.app.config, ...imgs.app.layers].reduce((n, d) => n + d.size, 0);
    t.ok(v('berth_proxy_upstream_bytes_total{upstream="dockerhub"}') >= blobBytes, 'bytes received from the upstream');
  });

  t.test('a multi-arch index and its children, fetched by digest when asked for', async (t) => {
    const idx = await manifest('dockerhub/library/multi', '1');
    t.equal(idx.digest, imgs.multi.index.digest);
    for (const img of imgs.multi.images) {
      const child = await manifest('dockerhub/library/multi', img.manifest.digest);
      t.equal(child.status, 200, `${img.platform} manifest`);
      t.equal(sha256(child.body), img.manifest.digest);
      const layer = await getBytes(berth.url, `/v2/dockerhub/library/multi/blobs/${img.layers[0].digest}`);
      t.equal(sha256(layer.bytes), img.layers[0].digest, `${img.platform} layer`);
    }
    const gets = await up.count('GET', new RegExp(`manifests/${imgs.multi.images[0].manifest.digest}$`));
    await manifest('dockerhub/library/multi', imgs.multi.images[0].manifest.digest);
    t.equal(await up.count('GET', new RegExp(`manifests/${imgs.multi.images[0].manifest.digest}$`)), gets, 'by digest: never checked again');
  });

  t.test("mirror requests: docker's (no prefix) and containerd's (?ns=) are served by the docker.io entry", async (t) => {
    const plain = await manifest('library/app', '1');
    t.equal(plain.digest, imgs.app.manifest.digest, 'library/app without prefix');
    const ns = await fetch(`${berth.url}/v2/library/app/blobs/${imgs.app.layers[2].digest}?ns=docker.io`);
    t.equal(sha256(Buffer.from(await ns.arrayBuffer())), imgs.app.layers[2].digest, 'a blob with ?ns=docker.io');
    // As on Docker Hub, the upstream's token service grants nothing for a repository it does not have.
    t.equal((await manifest('nosuch/app', '1')).status, 403, 'a name that is not on the upstream: denied there');
    t.equal((await manifest('dockerhub/app', '1')).digest, imgs.app.manifest.digest, 'dockerhub/app is library/app, as on Docker Hub');

    // A hosted repository of the same name answers first.
    const config = blob('{"hosted":true}');
    const hosted = await pushImage(berth.url, 'library/app', '1', config, [blob('hosted layer')]);
    t.equal((await manifest('library/app', '1')).digest, hosted.digest, 'hosted content wins over the mirror');
    t.equal((await manifest('dockerhub/library/app', '1')).digest, imgs.app.manifest.digest, 'the cache is unchanged');
  });

  t.test('pushes and deletes in a proxied prefix are refused, naming the upstream; hosted ones work', async (t) => {
    const post = await fetch(`${berth.url}/v2/dockerhub/library/app/blobs/uploads/`, { method: 'POST' });
    t.equal(post.status, 403);
    const e = await errorCode(post);
    t.equal(e.code, 'DENIED');
    t.match(e.message, up.url, 'the message names the upstream');
    const put = await fetch(`${berth.url}/v2/dockerhub/x/manifests/1`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    t.equal((await errorCode(put)).code, 'DENIED');
    const del = await fetch(`${berth.url}/v2/dockerhub/library/app/manifests/${imgs.app.manifest.digest}`, { method: 'DELETE' });
    t.equal(del.status, 405);
    t.equal((await errorCode(del)).code, 'UNSUPPORTED');
    const img = await pushImage(berth.url, 'team/app', '1', blob('{"team":1}'), [blob('team layer')]);
    t.equal((await manifest('team/app', '1')).digest, img.digest, 'a hosted push on the same registry works');
  });

  t.test('upstream credentials: the token flow with a user, and the upstream refusing without one', async (t) => {
    const m = await manifest('corp/private/app', '1');
    t.equal(m.digest, imgs.sibling.manifest.digest, 'corp/ pulls private/app with the mirror user');
    const b = await getBytes(berth.url, `/v2/corp/private/app/blobs/${imgs.sibling.layers[2].digest}`);
    t.equal(sha256(b.bytes), imgs.sibling.layers[2].digest);
    const anon = await fetch(`${berth.url}/v2/dockerhub/private/app/manifests/1`);
    t.equal(anon.status, 403, 'dockerhub/ has no credentials for private/');
    t.match((await errorCode(anon)).message, `the upstream dockerhub denied access`);
    // Tokens are reused: one 401 challenge per repository scope, not per request.
    t.equal((await up.requests()).filter((r) => r.status === 401 && r.path.startsWith('/v2/private/app/')).length, 2, 'one challenge for each cache (corp with a user, dockerhub without)');
  });

  t.test('a tag moved upstream is seen after the ttl', async (t) => {
    t.equal((await manifest('dockerhub/library/app', '1')).digest, imgs.app.manifest.digest);
    await seed(imgs.sibling.ref, 'library/app:1');
    await new Promise((r) => setTimeout(r, 1100));
    t.equal((await manifest('dockerhub/library/app', '1')).digest, imgs.sibling.manifest.digest, 'the new digest after 1 s');
    t.equal((await manifest('dockerhub/library/app', imgs.app.manifest.digest)).status, 200, 'the old image stays pullable by digest');
  });

  t.test('deploy/examples/proxy.yml runs (its upstreams pointed at the test upstream)', async (t) => {
    const example = fs.readFileSync(path.resolve(__dirname, '../../deploy/examples/proxy.yml'), 'utf8');
    const file = path.join(tempDir(), 'proxy.yml');
    fs.writeFileSync(file, example.replace(/remoteurl: \S+/g, `remoteurl: ${up.url}`));
    const reg = await startBerth({ config: file });
    t.teardown(() => reg.stop());
    for (const name of ['dockerhub/library/app', 'ghcr/library/app', 'library/app']) {
      const res = await fetch(`${reg.url}/v2/${name}/manifests/${imgs.sibling.manifest.digest}`, { headers: { accept: MANIFEST_ACCEPT } });
      t.equal(res.status, 200, name);
    }
  });

  t.test('berth verify: what a cache has not fetched yet is not a problem there', async (t) => {
    t.equal((await manifest('dockerhub/library/cold', '1')).status, 200, 'a manifest whose config blob was never asked for');
    const plain = await runCli(['verify'], berth.root);
    t.equal(plain.code, 1, 'read as hosted repositories, the cache misses blobs');
    t.match(plain.stdout, 'missing-blob');
    const cache = await runCli(['verify', '--config', config], berth.root);
    t.equal(cache.code, 0, `with the proxies configured, nothing is wrong: ${cache.stdout}`);
  });
}
