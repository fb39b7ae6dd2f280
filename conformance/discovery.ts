// Content discovery: tag listing and catalog with pagination, and the
// referrers API for manifests that carry a subject.
import { describe, header, type Resp } from './client';
import type { Expect } from './check';
import { EMPTY, MT, artifact, descriptor, imageConfig, ociIndex, ociManifest, randomBlob, unknownDigest, type Manifest } from './content';
import { SetupError, type Suite } from './suite';

const C = 'discovery';

/** The target of a `Link: <...>; rel="next"` header, if any. */
function nextLink(res: Resp): string | undefined {
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
  return m?.[1];
}

function sameList(got: unknown, want: string[]): boolean {
  return Array.isArray(got) && got.length === want.length && got.every((g, i) => g === want[i]);
}

export async function discovery(s: Suite): Promise<void> {
  await tags(s);
  await catalog(s);
  await referrers(s);
}

async function tags(s: Suite): Promise<void> {
  const repo = s.repo('tagged');
  // Unsorted on purpose; the listing must come back in lexical order.
  const names = ['v2', 'latest', 'v10', 'alpha', 'v1'];
  const sorted = [...names].sort();
  const ready = await s.check(C, `set-up: push one manifest under ${names.length} tags`, async () => {
    const layer = randomBlob(256);
    const config = imageConfig([layer]);
    await s.pushBlob(repo, layer);
    await s.pushBlob(repo, config);
    const m = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)]);
    for (const t of names) await s.pushManifest(repo, t, m);
  });
  const need = () => {
    if (!ready) throw new SetupError('tags could not be pushed');
  };
  const list = `/v2/${repo}/tags/list`;

  await s.check(C, 'GET tags/list: 200, name and every tag in lexical order', async (e) => {
    need();
    const res = await s.req('GET', list);
    e.status(res, 200);
    const body = e.json<{ name?: string; tags?: string[] }>(res);
    e.that(body.name === repo, 'MUST', `GET ${list}: name ${JSON.stringify(body.name)}, expected ${repo}`);
    e.that(sameList(body.tags, sorted), 'MUST', `GET ${list}: tags ${JSON.stringify(body.tags)}, expected ${JSON.stringify(sorted)}`);
  });

  await s.check(C, 'GET tags/list?n=2: first two tags and a Link to the next page', async (e) => {
    need();
    const res = await s.req('GET', `${list}?n=2`);
    e.status(res, 200);
    const body = e.json<{ tags?: string[] }>(res);
    e.that(sameList(body.tags, sorted.slice(0, 2)), 'MUST', `${describe(res)}: tags ${JSON.stringify(body.tags)}, expected ${JSON.stringify(sorted.slice(0, 2))}`);
    e.header(res, 'link', (v) => /rel="?next"?/.test(v) && /[?&]n=2(&|>|$)/.test(v) && v.includes(`last=${sorted[1]}`), 'MAY');
  });

  await s.check(C, 'GET tags/list?n=2&last=<tag>: the two tags after it', async (e) => {
    need();
    const res = await s.req('GET', `${list}?n=2&last=${sorted[1]}`);
    e.status(res, 200);
    const body = e.json<{ tags?: string[] }>(res);
    e.that(sameList(body.tags, sorted.slice(2, 4)), 'MUST', `${describe(res)}: tags ${JSON.stringify(body.tags)}, expected ${JSON.stringify(sorted.slice(2, 4))}`);
  });

  await s.check(C, 'following Link headers of tags/list?n=2 visits every tag once; the last page has none', async (e) => {
    need();
    const seen: string[] = [];
    let target: string | undefined = `${list}?n=2`;
    for (let pages = 0; target && pages < 10; pages++) {
      const res: Resp = await s.req('GET', target);
      e.status(res, 200);
      seen.push(...(e.json<{ tags?: string[] }>(res).tags ?? []));
      target = nextLink(res);
    }
    e.that(sameList(seen, sorted), 'MAY', `pages of ${list}?n=2 gave ${JSON.stringify(seen)}, expected ${JSON.stringify(sorted)}`);
  });

  await s.check(C, 'GET tags/list?last=<last tag>: empty list, no Link', async (e) => {
    need();
    const res = await s.req('GET', `${list}?last=${sorted[sorted.length - 1]}`);
    e.status(res, 200);
    const body = e.json<{ tags?: string[] | null }>(res);
    e.that((body.tags ?? []).length === 0, 'MUST', `${describe(res)}: tags ${JSON.stringify(body.tags)}, expected none`);
    e.that(nextLink(res) === undefined, 'MUST', `${describe(res)}: Link ${header(res, 'link')} on the last page`);
  });

  await s.check(C, 'GET tags/list of an unknown repository: 404 NAME_UNKNOWN', async (e) => {
    e.error(await s.req('GET', `/v2/${s.repo('never-pushed')}/tags/list`), 404, 'NAME_UNKNOWN');
  });
}

async function catalog(s: Suite): Promise<void> {
  // The catalog of a shared registry holds anything; page through the part
  // after "<namespace>/catalog-", which only this run writes to.
  const repos = ['catalog-a', 'catalog-b', 'catalog-c'].map((r) => s.repo(r));
  const before = s.repo('catalog-');
  const ready = await s.check(C, 'set-up: push three repositories for the catalog', async () => {
    const b = randomBlob(64);
    const m = ociManifest(descriptor(MT.empty, EMPTY), [descriptor(MT.ociLayer, b)]);
    for (const r of repos) {
      await s.pushBlob(r, EMPTY);
      await s.pushBlob(r, b);
      await s.pushManifest(r, 'latest', m);
    }
  });
  const need = () => {
    if (!ready) throw new SetupError('repositories could not be pushed');
  };

  await s.check(C, 'GET _catalog: 200 with a repositories list', async (e) => {
    need();
    const res = await s.req('GET', '/v2/_catalog');
    if (!e.status(res, 200, 'MAY')) return;
    const body = e.json<{ repositories?: string[] }>(res);
    e.that(Array.isArray(body.repositories), 'MUST', `GET /v2/_catalog: no "repositories" array`);
  });

  await s.check(C, 'GET _catalog?n=2&last=: next two repositories and a Link', async (e) => {
    need();
    const res = await s.req('GET', `/v2/_catalog?n=2&last=${before}`);
    if (!e.status(res, 200, 'MAY')) return;
    const body = e.json<{ repositories?: string[] }>(res);
    e.that(sameList(body.repositories, repos.slice(0, 2)), 'MAY', `${describe(res)}: ${JSON.stringify(body.repositories)}, expected ${JSON.stringify(repos.slice(0, 2))}`);
    const link = nextLink(res);
    e.that(!!link && link.includes('n=2') && decodeURIComponent(link).includes(`last=${repos[1]}`), 'MAY', `${describe(res)}: Link ${JSON.stringify(header(res, 'link') ?? null)}, expected a next page after ${repos[1]}`);
    if (!link) return;
    const next = await s.req('GET', link);
    e.status(next, 200);
    const page = e.json<{ repositories?: string[] }>(next);
    e.that(page.repositories?.[0] === repos[2], 'MAY', `${describe(next)}: first repository ${page.repositories?.[0]}, expected ${repos[2]}`);
  });
}

async function referrers(s: Suite): Promise<void> {
  const repo = s.repo('subjects');
  const layer = randomBlob(256);
  const config = imageConfig([layer]);
  const subject = ociManifest(descriptor(MT.ociConfig, config), [descriptor(MT.ociLayer, layer)]);
  const sigType = 'application/vnd.berth.conformance.signature';
  const sbomType = 'application/vnd.berth.conformance.sbom';
  const idxType = 'application/vnd.berth.conformance.bundle';
  const payload = randomBlob(100);
  const subj = descriptor(MT.ociManifest, subject);
  // One referrer names its artifactType; the other only has a config media
  // type, which the referrers list must report as its artifactType.
  const sig = artifact(sigType, [descriptor('application/vnd.berth.conformance.payload', payload)], {
    subject: subj,
    annotations: { 'org.berth.conformance': 'signature' },
  });
  const sbomConfig = randomBlob(50);
  const sbom = ociManifest(descriptor(sbomType, sbomConfig), [descriptor('application/vnd.berth.conformance.payload', payload)], { subject: subj });
  const path = (d: string) => `/v2/${repo}/referrers/${d}`;

  const ready = await s.check(C, 'set-up: push a subject image', async () => {
    for (const b of [layer, config, payload, sbomConfig, EMPTY]) await s.pushBlob(repo, b);
    await s.pushManifest(repo, 'subject', subject);
  });
  if (!ready) return;

  // Probe first: a registry without the API answers 404 and clients fall back to tags.
  const probe = await s.req('GET', path(subject.digest));
  const supported = probe.status !== 404;
  const level = supported ? 'MUST' : 'MAY';
  await s.check(C, 'referrers API supported (GET /v2/<name>/referrers/<digest> is not 404)', async (e) => {
    e.status(probe, 200, 'MAY');
  });

  for (const [what, m] of [
    ['with artifactType', sig],
    ['with only a config media type', sbom],
  ] as [string, Manifest][]) {
    await s.check(C, `PUT manifest with a subject (${what}): 201 and OCI-Subject`, async (e) => {
      const res = await s.putManifest(repo, m.digest, m);
      e.status(res, 201);
      e.header(res, 'oci-subject', subject.digest, level);
    });
  }
  if (!supported) {
    s.skip(C, 'referrers', 'the registry does not implement the referrers API');
    return;
  }

  const listed = (e: Expect, res: Resp): Record<string, any>[] => {
    e.status(res, 200);
    e.header(res, 'content-type', (v) => v.split(';')[0].trim() === MT.ociIndex, 'MUST');
    const body = e.json<{ schemaVersion?: number; mediaType?: string; manifests?: Record<string, any>[] }>(res);
    e.that(body.schemaVersion === 2 && body.mediaType === MT.ociIndex && Array.isArray(body.manifests), 'MUST', `${describe(res)}: not an OCI index: ${res.body.toString().slice(0, 200)}`);
    return body.manifests ?? [];
  };

  await s.check(C, 'GET referrers: an OCI index with both referrers, artifactType and annotations', async (e) => {
    const list = listed(e, await s.req('GET', path(subject.digest)));
    const bySig = list.find((d) => d.digest === sig.digest);
    const bySbom = list.find((d) => d.digest === sbom.digest);
    e.that(list.length === 2, 'MUST', `expected 2 referrers, got ${list.length}: ${JSON.stringify(list)}`);
    e.that(bySig?.mediaType === MT.ociManifest && bySig?.size === sig.size && bySig?.artifactType === sigType, 'MUST', `signature descriptor wrong: ${JSON.stringify(bySig)}`);
    e.that(bySig?.annotations?.['org.berth.conformance'] === 'signature', 'MUST', `signature descriptor lacks the manifest's annotations: ${JSON.stringify(bySig)}`);
    e.that(bySbom?.artifactType === sbomType, 'MUST', `a referrer without artifactType must be listed with its config media type: ${JSON.stringify(bySbom)}`);
  });

  await s.check(C, 'an OCI index with a subject and artifactType is listed as a referrer', async (e) => {
    const idx = ociIndex([descriptor(MT.ociManifest, sbom)], { artifactType: idxType, subject: subj });
    const put = await s.putManifest(repo, idx.digest, idx);
    e.status(put, 201);
    e.header(put, 'oci-subject', subject.digest, 'MUST');
    const list = listed(e, await s.req('GET', path(subject.digest)));
    const d = list.find((x) => x.digest === idx.digest);
    e.that(d?.mediaType === MT.ociIndex && d?.artifactType === idxType && d?.size === idx.size, 'MUST', `index referrer wrong or missing: ${JSON.stringify(d ?? list)}`);
  });

  await s.check(C, 'GET referrers?artifactType=: filtered list and OCI-Filters-Applied', async (e) => {
    const res = await s.req('GET', `${path(subject.digest)}?artifactType=${encodeURIComponent(sigType)}`);
    const list = listed(e, res);
    if (!e.header(res, 'oci-filters-applied', 'artifactType', 'MAY')) return;
    e.that(list.length === 1 && list[0].digest === sig.digest, 'MUST', `filtered on ${sigType} but got ${JSON.stringify(list)}`);
  });

  await s.check(C, 'GET referrers of an unknown digest: 200 and an empty index', async (e) => {
    const list = listed(e, await s.req('GET', path(unknownDigest())));
    e.that(list.length === 0, 'MUST', `expected no referrers, got ${JSON.stringify(list)}`);
  });

  await s.check(C, 'GET referrers with a malformed digest: 400', async (e) => {
    e.error(await s.req('GET', path('sha256:nope')), 400, 'DIGEST_INVALID');
  });

  await s.check(C, 'a referrer pushed before its subject exists is listed', async (e) => {
    const ghost = descriptor(MT.ociManifest, randomBlob(10));
    const early = artifact(sigType, [descriptor('application/vnd.berth.conformance.payload', payload)], { subject: ghost });
    const put = await s.putManifest(repo, early.digest, early);
    e.status(put, 201);
    e.header(put, 'oci-subject', ghost.digest, 'MUST');
    const list = listed(e, await s.req('GET', path(ghost.digest)));
    e.that(list.some((d) => d.digest === early.digest), 'MUST', `referrer of a missing subject not listed: ${JSON.stringify(list)}`);
  });
}

