// The web UI in a real browser (Debian's chromium, headless, driven by
// playwright-core) against a real berth with token auth, holding images
// pushed by skopeo and docker: a multi-arch index, two images sharing base
// layers, an SBOM attached through the referrers API. Navigate, filter, sort,
// open images, compare sharing counts with the store, delete a tag, and sign
// in as two users whose names must never show to each other. Screenshots of
// every page go to .ci/logs/ui (see the README's "Tests").
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { addUser, basic, makeImage } from './helpers/auth';
import { type Berth, startBerth } from './helpers/berth';
import { type Session as BrowserSession, openBrowser, needChromium, type Page, SHOTS } from './helpers/browser';
import { mustRun, needClients } from './helpers/clients';
import { dockerPushPull, startEngines } from './helpers/engines';
import { buildTestImages, MEDIA, plainTempDir } from './helpers/images';
import { freePort } from './helpers/process';
import { blob, pushImage } from './helpers/registry-client';

t.setTimeout(900_000);

const SERVICE = 'berth-ui';
const ISSUER = 'berth-ui-issuer';
const PW: Record<string, string> = { root: 'root-pw-1', alice: 'alice-pw-1', bob: 'bob-pw-12', carol: 'carol-pw-1' };
/** carol's repositories: more than one page of the list (50). */
const MANY = Array.from({ length: 55 }, (_, i) => `carol/r-${String(i).padStart(2, '0')}`);
/** Each user owns a namespace; public/ is for everyone; nothing else is visible to anyone but root. */
const POLICY = `
admins: [root]
catalog: [authenticated]
default: {}
rules:
  - repository: "public/**"
    grant:
      anonymous: [pull]
  - repository: "{user}/**"
    grant:
      authenticated: [pull, push, delete]
  - repository: "hub/**"
    grant:
      authenticated: [pull]
`;

const clients = needClients(t, ['skopeo', 'docker', 'dockerd']);
if (clients && needChromium(t)) {
  const dir = plainTempDir('berthui');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let berth: Berth;
  const imgs = buildTestImages('ui');
  t.teardown(() => imgs.cleanup());

  t.before(async () => {
    fs.rmSync(SHOTS, { recursive: true, force: true }); // only this run's pictures
    const users = path.join(dir, 'users.yml');
    for (const u of Object.keys(PW)) await addUser(users, u, PW[u]);
    fs.writeFileSync(path.join(dir, 'policy.yml'), POLICY);
    const key = path.join(dir, 'signer.key');
    await mustRun('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    const port = await freePort();
    const config = path.join(dir, 'config.yml');
    fs.writeFileSync(
      config,
      ['auth:', '  token:', `    realm: http://127.0.0.1:${port}/token`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`]
        .concat(['tokenserver:', `  issuer: ${ISSUER}`, `  key: ${key}`, `  users: ${users}`, `  policy: ${path.join(dir, 'policy.yml')}`, `  services: [${SERVICE}]`, ''])
        .join('\n'),
    );
    // An upstream registry for the pull-through cache under hub/.
    upstream = await startBerth();
    await mustRun(clients!.skopeo, ['copy', '--dest-tls-verify=false', makeImage(dir, 'upstream').ref, `docker://${upstream.host}/library/tool:1`]);
    fs.appendFileSync(config, ['berth:', '  proxies:', '    - prefix: hub', `      remoteurl: ${upstream.url}`, ''].join('\n'));
    berth = await startBerth({ port, config });
    await pushFixtures(berth);
  });
  let upstream: Berth;
  t.teardown(() => Promise.all([berth?.stop(), upstream?.stop()]));

  t.test('anonymous sees only public repositories', async (t) => {
    const s = await openBrowser(t, { prefix: 'anonymous-' });
    const { page } = s;
    const shot = look(t, s);
    await page.goto(berth.url + '/');
    await page.getByRole('link', { name: 'public/app' }).waitFor();
    await shot('repositories');
    const text = await page.locator('body').innerText();
    t.notMatch(text, /alice|bob/, 'no private names');
    t.equal(await page.getByRole('link', { name: 'Sign in' }).count(), 1);
    await page.getByRole('link', { name: 'Storage' }).click();
    await page.getByRole('heading', { name: 'Repositories by unique bytes' }).waitFor();
    const storage = await page.locator('main').innerText();
    t.match(storage, /need the catalog right/, 'no store-wide figures without the catalog right');
    t.notMatch(storage, /alice|bob|Dedup ratio/);
    await shot('storage');
    shot.accessible();
  });

  t.test('alice: navigate, filter, sort, images, sharing, delete a tag', async (t) => {
    const s = await openBrowser(t);
    const { page } = s;
    const shot = look(t, s);
    const api = recordApi(page);
    await signIn(page, 'alice');
    await shot('repositories');
    t.same(await repoNames(page), ['alice/app', 'alice/sibling', 'hub/library/tool', 'public/app'], 'what alice may pull, by name');
    t.match(await page.getByRole('row', { name: /hub\/library\/tool/ }).innerText(), `proxy · ${upstream.host}`, 'the pull-through cache is marked');

    await t.test('filter', async (t) => {
      await page.getByLabel('Filter by name').fill('sib');
      await page.waitForURL(/\?q=sib/);
      await waitRows(page, ['alice/sibling']);
      t.pass('one match');
      await shot('repositories-filtered');
      await page.getByLabel('Filter by name').fill('');
      await waitRows(page, ['alice/app', 'alice/sibling', 'hub/library/tool', 'public/app']);
    });

    await t.test('sort by size, then name descending, with the keyboard', async (t) => {
      await page.getByRole('button', { name: /^Size/ }).click();
      await page.waitForURL(/sort=size/);
      const bySize = (await apiJson<{ repositories: { name: string }[] }>(page, '/repositories?sort=size&order=desc')).repositories.map((r) => r.name);
      await waitRows(page, bySize);
      t.match(await page.locator('th[aria-sort="descending"]').innerText(), /size/i, 'aria-sort on the size column');
      const name = page.getByRole('button', { name: /^Name/ });
      await name.focus();
      await page.keyboard.press('Enter');
      await page.waitForURL(/sort=name&order=asc/);
      await name.focus();
      await page.keyboard.press('Enter');
      await waitRows(page, ['public/app', 'hub/library/tool', 'alice/sibling', 'alice/app']);
      t.pass('Enter on a focused header sorts');
    });

    await t.test('repository and image pages; sharing counts match the store', async (t) => {
      await page.goto(berth.url + '/');
      await page.getByRole('link', { name: 'alice/app' }).click();
      await page.getByRole('heading', { name: 'alice/app' }).waitFor();
      await page.getByRole('row', { name: /old/ }).waitFor();
      t.match(await page.getByRole('row', { name: /1\.0/ }).innerText(), /SBOM/, 'the SBOM badge on the tag it is attached to');
      const pull = page.getByRole('row', { name: /1\.0/ }).getByRole('button', { name: `Copy docker pull ${berth.host}/alice/app:1.0` });
      t.equal(await pull.getAttribute('data-copy'), `docker pull ${berth.host}/alice/app:1.0`);
      const byDigest = page.getByRole('button', { name: `Copy docker pull by @digest: ${berth.host}/alice/app@${imgs.app.manifest.digest}` });
      t.equal(await byDigest.count(), 2, 'a copy-by-digest button per tag');
      await shot('repository');

      await page.getByRole('link', { name: '1.0', exact: true }).click();
      await page.getByRole('heading', { name: 'Layers' }).waitFor();
      const layers = await page.locator('table.layers tbody tr').allInnerTexts();
      t.equal(layers.length, imgs.app.layers.length);
      const want = sharingFromStore(berth.root, 'alice/app', imgs.app.manifest.digest, (r) => /^(alice|public|hub)\//.test(r));
      imgs.app.layers.forEach((l, i) => {
        const w = want.get(l.digest)!;
        const text = w.images ? `shared with ${w.images} other image${w.images === 1 ? '' : 's'} in ${w.repositories} repositor${w.repositories === 1 ? 'y' : 'ies'}` : 'only this image';
        t.match(layers[i], text, `layer ${i + 1}: ${text}`);
      });
      t.match(layers[0], /in 2 repositories/, 'a base layer: alice/sibling and public/app');
      await page.locator('table.layers tbody tr').first().getByRole('button', { name: /shared with/ }).click();
      await page.locator('.containing a').first().waitFor();
      t.same((await page.locator('.containing a').allInnerTexts()).sort(), ['alice/sibling:1.0', 'public/app:latest'], 'which images, each a link');
      t.match(await page.locator('body').innerText(), /linux\/amd64/);
      await shot('image');

      await page.getByRole('link', { name: 'application/spdx+json' }).click();
      await page.getByText('Attached to').waitFor();
      await page.getByText('Manifest JSON').click();
      t.match(await page.locator('pre').first().innerText(), /"artifactType": "application\/spdx\+json"/, 'the raw manifest');
      await shot('referrer');
    });

    await t.test('storage', async (t) => {
      await page.getByRole('link', { name: 'Storage' }).click();
      await page.getByRole('heading', { name: 'Most shared layers' }).waitFor();
      t.match(await page.locator('.cards').innerText(), /Dedup ratio/);
      t.notMatch(await page.locator('body').innerText(), /bob/);
      await shot('storage');
    });

    await t.test('delete a tag', async (t) => {
      await page.goto(`${berth.url}/r/alice/app`);
      const del = page.getByRole('button', { name: 'Delete tag old' });
      await del.focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      t.equal(await page.evaluate(() => document.activeElement?.closest('dialog') !== null), true, 'focus moves into the dialog');
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      t.pass('Escape cancels');
      await del.click();
      await dialog.getByText('This removes:').waitFor();
      t.match(await dialog.innerText(), /1 tag: old/);
      t.match(await dialog.innerText(), /0 image manifests/, 'the image stays: 1.0 still names it');
      await shot('delete-tag');
      await dialog.getByRole('button', { name: 'Delete tag' }).click();
      await page.getByRole('status').filter({ hasText: 'Deleted tag alice/app:old' }).waitFor();
      await page.getByRole('row', { name: /old/ }).waitFor({ state: 'detached' });
      const tags = await fetch(`${berth.url}/v2/alice/app/tags/list`, { headers: { authorization: `Bearer ${await token('root', 'repository:alice/app:pull')}` } });
      t.same(((await tags.json()) as { tags: string[] }).tags, ['1.0'], 'gone from the registry too');
    });

    await t.test('sign out', async (t) => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('link', { name: 'Sign in' }).waitFor();
      await waitRows(page, ['public/app']);
      t.equal((await s.browser.cookies()).filter((c) => c.name === 'berth_session').length, 0, 'the cookie is gone');
    });
    t.notMatch(api.text(), /bob\//, 'no answer alice got names bob’s repositories');
    shot.accessible();
  });

  t.test('bob sees his own and the multi-arch index, never alice', async (t) => {
    const s = await openBrowser(t, { prefix: 'bob-' });
    const { page } = s;
    const shot = look(t, s);
    const api = recordApi(page);
    await signIn(page, 'bob');
    t.same(await repoNames(page), ['bob/multi', 'bob/tools', 'hub/library/tool', 'public/app']);
    await page.getByRole('link', { name: 'bob/multi' }).click();
    await page.getByRole('link', { name: '1.0', exact: true }).click();
    await page.getByRole('heading', { name: 'Platforms' }).waitFor();
    const platforms = await page.locator('.platform-list a').allInnerTexts();
    t.same(platforms, ['linux/amd64', 'linux/arm64']);
    await shot('index');
    await page.getByRole('link', { name: 'linux/arm64' }).click();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    t.match(await page.locator('.facts').innerText(), /linux\/arm64/);
    await shot('index-child');
    await page.goto(`${berth.url}/r/bob/tools`);
    await page.getByRole('row', { name: /\b1\b/ }).waitFor();
    t.match(await page.locator('table.tags').innerText(), /by root/, 'pushed by, as recorded');
    await shot('docker-pushed');
    await t.test('storage', async () => {
      await page.goto(`${berth.url}/storage`);
      await page.getByRole('heading', { name: 'Most shared layers' }).waitFor();
      await shot('storage');
    });
    for (const p of ['/', '/storage', '/r/bob/multi']) {
      await page.goto(berth.url + p);
      await page.waitForLoadState('networkidle');
      t.notMatch(await page.locator('body').innerText(), /alice/, `${p}: no trace of alice`);
    }
    t.notMatch(api.text(), /alice/, 'nor in any answer of the admin API');
    t.notMatch(api.text(), new RegExp(imgs.sibling.layers[2].digest), 'nor her layers');

    await t.test("alice's things, asked for by name, look like nothing", async (t) => {
      await page.goto(`${berth.url}/r/alice/app`);
      await page.getByRole('alert').waitFor();
      t.match(await page.getByRole('alert').innerText(), /No such repository, or you may not see it/);
      t.notMatch(await page.locator('body').innerText(), /1\.0|old|sha256/, 'no tag or digest');
      await shot('denied');
      const own = (await apiJson<{ total: number }>(page, '/repositories?q=alice')).total;
      t.equal(own, 0, 'the filter finds nothing');
      for (const p of ['/repositories/alice/app', `/repositories/alice/app/_manifests/${imgs.app.manifest.digest}`, '/repositories/alice/app/_tags', `/blobs/${imgs.sibling.layers[2].digest}/images`]) {
        const r = await page.request.get(`${berth.url}/berth/v1${p}`);
        t.equal(r.status(), 404, `${p}: 404`);
        t.notMatch(await r.text(), /1\.0|sibling|public|size/i, `${p}: the error tells nothing`);
      }
      const usage = await page.request.get(`${berth.url}/berth/v1/usage`);
      t.notMatch(await usage.text(), /alice/, 'usage names none of hers');
    });
    shot.accessible();
  });

  t.test('server-side pages of the repository list', async (t) => {
    const s = await openBrowser(t, { prefix: 'carol-' });
    const { page } = s;
    const shot = look(t, s);
    await signIn(page, 'carol');
    t.match(await page.locator('.pager').innerText(), /1–50 of 57/, 'the first page (carol also sees hub/ and public/)');
    t.same(await repoNames(page), MANY.slice(0, 50));
    await page.getByRole('button', { name: 'Next →' }).click();
    await waitRows(page, [...MANY.slice(50), 'hub/library/tool', 'public/app']);
    t.match(await page.locator('.pager').innerText(), /51–57 of 57/);
    t.ok(await page.getByRole('button', { name: 'Next →' }).isDisabled(), 'the last page');
    await shot('repositories-page-2');
    await page.getByRole('button', { name: '← Previous' }).click();
    await waitRows(page, MANY.slice(0, 50));
    t.pass('and back');
    shot.accessible();
  });

  t.test('phone width, dark', async (t) => {
    const s = await openBrowser(t, { width: 390, height: 844, dark: true, prefix: 'phone-dark-' });
    const { page } = s;
    const shot = look(t, s);
    await signIn(page, 'alice');
    await shot('repositories');
    await page.goto(`${berth.url}/r/alice/app`);
    await page.getByRole('row', { name: /1\.0/ }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    t.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
    await shot('repository');
    await page.goto(`${berth.url}/r/alice/app:1.0`);
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    await shot('image');
    shot.accessible();
  });

  t.test('a screenshot of every page', async (t) => {
    const want = ['anonymous-repositories', 'anonymous-storage', 'repositories', 'repositories-filtered', 'repository', 'image', 'referrer', 'delete-tag']
      .concat(['bob-index', 'bob-index-child', 'bob-docker-pushed', 'bob-denied', 'carol-repositories-page-2', 'phone-dark-repositories', 'phone-dark-repository', 'phone-dark-image'])
      .concat(['storage', 'bob-storage']);
    const have = new Set(fs.readdirSync(SHOTS));
    t.same(want.filter((n) => !have.has(`${n}.png`)), [], `all in ${SHOTS}`);
  });

  // ---- helpers ----

  async function token(user: string, ...scopes: string[]): Promise<string> {
    const q = new URLSearchParams({ service: SERVICE });
    for (const sc of scopes) q.append('scope', sc);
    const res = await fetch(`${berth.url}/token?${q}`, { headers: { authorization: basic(user, PW[user]) } });
    return ((await res.json()) as { token: string }).token;
  }

  /** skopeo (as root): two images sharing base layers, a multi-arch index; docker: one more; an SBOM by HTTP with a subject. */
  async function pushFixtures(b: Berth): Promise<void> {
    const skopeo = (ref: string, dest: string, all = false) =>
      mustRun(clients!.skopeo, ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', `root:${PW.root}`, ref, `docker://${b.host}/${dest}`]);
    await skopeo(imgs.app.ref, 'alice/app:1.0');
    await skopeo(imgs.app.ref, 'alice/app:old');
    await skopeo(imgs.sibling.ref, 'alice/sibling:1.0');
    await skopeo(imgs.app.ref, 'public/app:latest');
    await skopeo(imgs.multi.ref, 'bob/multi:1.0', true);
    // Pulled through the cache once, so it is stored and listed.
    await mustRun(clients!.skopeo, ['copy', '--src-tls-verify=false', '--src-creds', `root:${PW.root}`, `docker://${b.host}/hub/library/tool:1`, `oci:${path.join(dir, 'pulled')}:tool`]);
    const engines = await startEngines();
    try {
      const docker = async (...args: string[]) => (await mustRun(clients!.docker, args, { env: engines.env, input: args[0] === 'login' ? PW.root : undefined })).stdout.trim();
      await docker('login', b.host, '-u', 'root', '--password-stdin');
      const work = path.join(dir, 'docker');
      fs.mkdirSync(work);
      await dockerPushPull(docker, work, `${b.host}/bob/tools:1`);
    } finally {
      await engines.stop();
    }
    const many = { authorization: `Bearer ${await token('root', ...MANY.map((r) => `repository:${r}:pull,push`))}` };
    for (const r of MANY) await pushImage(b.url, r, 'v1', blob('{}'), [blob(`${r} content`)], {}, many);
    const auth = { authorization: `Bearer ${await token('root', 'repository:alice/app:pull,push')}` };
    const sbom = blob(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'alice/app', packages: [] }));
    await pushImage(b.url, 'alice/app', undefined, blob('{}'), [sbom], {
      artifactType: 'application/spdx+json',
      subject: { mediaType: MEDIA.manifest, digest: imgs.app.manifest.digest, size: imgs.app.manifest.size },
    }, auth);
  }

  async function signIn(page: Page, user: string): Promise<void> {
    await page.goto(berth.url + '/');
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password or robot secret').fill(PW[user]);
    await page.getByLabel('Password or robot secret').press('Enter');
    await page.getByText(user, { exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Repositories' }).waitFor();
    await page.locator('table.repos tbody tr').first().waitFor();
  }
}

/**
 * Screenshot a page and check it with axe-core; `accessible()` at the end of the test that
 * opened the browser asserts that every page passed (subtests share the one browser).
 */
function look(t: Test, s: BrowserSession): ((name: string) => Promise<void>) & { accessible(): void } {
  const found: string[] = [];
  const shot = async (name: string) => void found.push(...(await s.look(name)).map((p) => `${name}: ${p}`));
  return Object.assign(shot, { accessible: () => void t.same(found, [], 'no accessibility problems on any page (axe-core, WCAG 2.1 A/AA)') });
}

async function repoNames(page: Page): Promise<string[]> {
  await page.locator('table.repos tbody tr').first().waitFor();
  return page.locator('table.repos tbody th a').allInnerTexts();
}

async function waitRows(page: Page, names: string[]): Promise<void> {
  await page.waitForFunction(
    (want) => JSON.stringify([...document.querySelectorAll('table.repos tbody th a')].map((a) => a.textContent)) === want,
    JSON.stringify(names),
  );
}

/** An admin API answer as this browser's session gets it. */
async function apiJson<T>(page: Page, p: string): Promise<T> {
  const r = await page.request.get(new URL(`/berth/v1${p}`, page.url()).href);
  return (await r.json()) as T;
}

/** Every admin API answer the page receives, to search for names that must not be there. */
function recordApi(page: Page): { text(): string } {
  const bodies: string[] = [];
  page.on('response', (r) => {
    if (new URL(r.url()).pathname.startsWith('/berth/v1/')) void r.text().then((b) => bodies.push(b), () => undefined);
  });
  return { text: () => bodies.join('\n') };
}

/**
 * From the store's files: for each layer of (repo, digest), how many other images (repository and
 * manifest) the viewer may see hold it, and in how many repositories.
 */
function sharingFromStore(root: string, repo: string, digest: string, visible: (repo: string) => boolean): Map<string, { images: number; repositories: number }> {
  const v2 = path.join(root, 'docker/registry/v2');
  const blobOf = (d: string) => fs.readFileSync(path.join(v2, 'blobs/sha256', d.slice(7, 9), d.slice(7), 'data'));
  const holders = new Map<string, { repo: string; digest: string }[]>();
  const repos: string[] = [];
  const walk = (d: string, name: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (e.name === '_manifests') repos.push(name);
      else if (!e.name.startsWith('_')) walk(path.join(d, e.name), name ? `${name}/${e.name}` : e.name);
    }
  };
  walk(path.join(v2, 'repositories'), '');
  for (const r of repos.filter(visible)) {
    const revisions = path.join(v2, 'repositories', r, '_manifests/revisions/sha256');
    for (const hex of fs.readdirSync(revisions)) {
      const m = JSON.parse(blobOf(`sha256:${hex}`).toString()) as { layers?: { digest: string }[] };
      for (const l of m.layers ?? []) holders.set(l.digest, [...(holders.get(l.digest) ?? []), { repo: r, digest: `sha256:${hex}` }]);
    }
  }
  const own = JSON.parse(blobOf(digest).toString()) as { layers: { digest: string }[] };
  return new Map(
    own.layers.map((l) => {
      const others = (holders.get(l.digest) ?? []).filter((h) => !(h.repo === repo && h.digest === digest));
      return [l.digest, { images: others.length, repositories: new Set(others.map((h) => h.repo)).size }];
    }),
  );
}

