// Push, blobs: every upload flavour, mounts, and every way an upload can be
// wrong (bad names and digests, chunks out of order, lying or vanishing clients).
import crypto from 'node:crypto';
import { describe, header, type Resp } from './client';
import type { Expect } from './check';
import { blobOf, randomBlob, unknownDigest, type Blob } from './content';
import { expectBlob } from './pull';
import { SetupError, type Suite } from './suite';

const C = 'push';
const OCTET = { 'content-type': 'application/octet-stream' };

/** A 202 upload answer: Location, and Range covering `received` bytes. */
function expectUploading(e: Expect, res: Resp, received: number, rangeLevel: 'MUST' | 'SHOULD' | 'MAY'): void {
  e.status(res, 202);
  e.header(res, 'location', undefined, 'MUST');
  // An empty session is reported as 0-0 by distribution's convention; accept the literal empty range too.
  const want = received === 0 ? /^(bytes=)?0-(0|-1)$/ : new RegExp(`^(bytes=)?0-${received - 1}$`);
  e.header(res, 'range', want, rangeLevel);
}

/** 201 with a Location, and the blob is then served by the repository. */
async function expectCreated(s: Suite, e: Expect, res: Resp, repo: string, blob: Blob): Promise<void> {
  e.status(res, 201);
  e.header(res, 'location', undefined, 'MUST');
  e.header(res, 'docker-content-digest', blob.digest, 'SHOULD');
  expectBlob(e, await s.req('GET', `/v2/${repo}/blobs/${blob.digest}`, { follow: true }), blob);
}

async function expectAbsent(s: Suite, e: Expect, repo: string, digest: string): Promise<void> {
  const res = await s.req('HEAD', `/v2/${repo}/blobs/${digest}`);
  e.that(res.status === 404, 'MUST', `${describe(res)}: a rejected or incomplete upload must leave nothing visible, got ${res.status}`);
}

export async function pushBlobs(s: Suite): Promise<void> {
  const repo = s.repo('push');
  const uploads = `/v2/${repo}/blobs/uploads/`;

  await s.check(C, 'POST upload: 202, Location, Docker-Upload-UUID, Range', async (e) => {
    const res = await s.req('POST', uploads);
    expectUploading(e, res, 0, 'MAY');
    e.header(res, 'docker-upload-uuid', undefined, 'MAY');
  });

  await s.check(C, 'monolithic POST ?digest= with the body: 201', async (e) => {
    const b = randomBlob(2048);
    const res = await s.req('POST', `${uploads}?digest=${b.digest}`, { body: b.data, headers: OCTET });
    // A registry without single-request uploads answers 202 and the client carries on with PUT.
    if (!e.status(res, 201, 'SHOULD')) return;
    await expectCreated(s, e, res, repo, b);
  });

  await s.check(C, 'POST then PUT ?digest= with the whole body: 201', async (e) => {
    const b = randomBlob(3000);
    const start = await s.startUpload(repo);
    const res = await s.req('PUT', s.location(start, { digest: b.digest }), { body: b.data, headers: OCTET });
    await expectCreated(s, e, res, repo, b);
  });

  await s.check(C, 'streamed PATCH then PUT ?digest= without a body: 202 with Range, then 201', async (e) => {
    const b = randomBlob(5000);
    const start = await s.startUpload(repo);
    const patch = await s.req('PATCH', s.location(start), { body: b.data, headers: OCTET });
    expectUploading(e, patch, b.size, 'SHOULD');
    const res = await s.req('PUT', s.location(patch, { digest: b.digest }));
    await expectCreated(s, e, res, repo, b);
  });

  // One chunked upload walked through several checks, each naming its step.
  const chunked = randomBlob(3 * 1024 + 17);
  const cut1 = 1024;
  const cut2 = 2048;
  let at: Resp | undefined;
  const step = () => {
    if (!at) throw new SetupError('an earlier step of this chunked upload failed');
    return at;
  };
  const chunk = (res: Resp, from: number, to: number, digest?: string) =>
    s.req(digest ? 'PUT' : 'PATCH', s.location(res, digest ? { digest } : {}), {
      body: chunked.data.subarray(from, to),
      headers: { ...OCTET, 'content-range': `${from}-${to - 1}` },
    });

  await s.check(C, 'chunked PATCH with Content-Range: 202, Location, Range', async (e) => {
    const start = await s.startUpload(repo);
    const res = await chunk(start, 0, cut1);
    expectUploading(e, res, cut1, 'MUST');
    at = res;
  });

  await s.check(C, 'GET upload status: 204, Location, Range', async (e) => {
    const res = await s.req('GET', s.location(step()));
    e.status(res, 204);
    e.header(res, 'location', undefined, 'MUST');
    e.header(res, 'range', new RegExp(`^(bytes=)?0-${cut1 - 1}$`), 'MUST');
  });

  await s.check(C, 'chunk sent again (repeated range): 416', async (e) => {
    const res = await chunk(step(), 0, cut1);
    e.status(res, 416);
  });

  await s.check(C, 'chunk out of order (gap): 416', async (e) => {
    const res = await chunk(step(), cut1 + 10, cut2);
    e.status(res, 416);
  });

  await s.check(C, 'upload still resumable after a 416: Range unchanged', async (e) => {
    const res = await s.req('GET', s.location(step()));
    e.status(res, 204, 'SHOULD');
    e.header(res, 'range', new RegExp(`^(bytes=)?0-${cut1 - 1}$`), 'SHOULD');
  });

  await s.check(C, 'second chunk in order: 202, Range grows', async (e) => {
    const res = await chunk(step(), cut1, cut2);
    at = undefined;
    expectUploading(e, res, cut2, 'MUST');
    at = res;
  });

  await s.check(C, 'PUT ?digest= with the final chunk: 201, blob complete', async (e) => {
    const res = await chunk(step(), cut2, chunked.size, chunked.digest);
    await expectCreated(s, e, res, repo, chunked);
  });

  await s.check(C, 'a 4 MiB blob in two PATCH chunks of 2 MiB', async (e) => {
    const b = randomBlob(4 * 1024 * 1024);
    const half = b.size / 2;
    let res = await s.startUpload(repo);
    for (const [from, to] of [
      [0, half],
      [half, b.size],
    ]) {
      res = await s.req('PATCH', s.location(res), { body: b.data.subarray(from, to), headers: { ...OCTET, 'content-range': `${from}-${to - 1}` } });
      expectUploading(e, res, to, 'MUST');
    }
    await expectCreated(s, e, await s.req('PUT', s.location(res, { digest: b.digest })), repo, b);
  });

  await s.check(C, 'two concurrent uploads of the same blob both succeed', async (e) => {
    const b = randomBlob(256 * 1024);
    const push = async () => s.req('PUT', s.location(await s.startUpload(repo), { digest: b.digest }), { body: b.data, headers: OCTET });
    const [one, two] = await Promise.all([push(), push()]);
    e.status(one, 201, 'SHOULD');
    e.status(two, 201, 'SHOULD');
    expectBlob(e, await s.req('GET', `/v2/${repo}/blobs/${b.digest}`, { follow: true }), b);
  });

  await s.check(C, 'an upload session cannot be continued through another repository: 404 BLOB_UPLOAD_UNKNOWN', async (e) => {
    const loc = s.location(await s.startUpload(repo));
    const other = s.repo('push-other');
    e.that(loc.includes(`/v2/${repo}/`), 'MUST', `upload Location ${loc} is not under /v2/${repo}/`);
    const res = await s.req('PATCH', loc.replace(`/v2/${repo}/`, `/v2/${other}/`), { body: Buffer.from('abc'), headers: OCTET });
    e.error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'SHOULD');
  });

  await s.check(C, 'DELETE upload cancels it: 204, then status 404 BLOB_UPLOAD_UNKNOWN', async (e) => {
    const start = await s.startUpload(repo);
    const patch = await s.req('PATCH', s.location(start), { body: randomBlob(100).data, headers: OCTET });
    e.status(patch, 202);
    const del = await s.req('DELETE', s.location(patch));
    e.status(del, 204, 'SHOULD');
    e.error(await s.req('GET', s.location(patch)), 404, 'BLOB_UPLOAD_UNKNOWN', 'SHOULD');
  });

  const uuid = crypto.randomUUID();
  for (const method of ['GET', 'PATCH', 'PUT']) {
    await s.check(C, `${method} an unknown upload id: 404 BLOB_UPLOAD_UNKNOWN`, async (e) => {
      const target = `${uploads}${uuid}${method === 'PUT' ? `?digest=${unknownDigest()}` : ''}`;
      const res = await s.req(method, target, method === 'GET' ? {} : { body: Buffer.from('abc'), headers: OCTET });
      e.error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'SHOULD');
    });
  }

  await s.check(C, 'sha512 digest: upload and GET by sha512', async (e) => {
    const b = blobOf(crypto.randomBytes(1500), 'sha512');
    const start = await s.startUpload(repo);
    const res = await s.req('PUT', s.location(start, { digest: b.digest }), { body: b.data, headers: OCTET });
    if (!e.status(res, 201, 'SHOULD')) return;
    await expectCreated(s, e, res, repo, b);
  });

  await mounts(s);
  await badUploads(s, repo);
}

async function mounts(s: Suite): Promise<void> {
  const src = s.crossNs;
  const shared = randomBlob(1024);
  const ready = await s.check(C, `set-up: push a blob to the mount source ${src}`, async () => {
    await s.pushBlob(src, shared);
  });
  const need = () => {
    if (!ready) throw new SetupError('the mount source could not be filled');
  };
  const mount = (target: string, digest: string, from?: string) =>
    s.req('POST', `/v2/${target}/blobs/uploads/?mount=${digest}${from ? `&from=${from}` : ''}`);

  await s.check(C, 'mount ?mount=&from= a repository that has the blob: 201', async (e) => {
    need();
    const target = s.repo('mount-a');
    const res = await mount(target, shared.digest, src);
    // Mounting is optional: 202 means "upload it yourself" and is allowed, if weaker.
    if (!e.status(res, 201, 'SHOULD')) return;
    await expectCreated(s, e, res, target, shared);
  });

  await s.check(C, 'mount from a repository without the blob: 202 upload, nothing mounted', async (e) => {
    need();
    const target = s.repo('mount-b');
    const res = await mount(target, shared.digest, s.repo('mount-empty'));
    e.status(res, 202, 'SHOULD');
    if (res.status === 202) e.header(res, 'location', undefined, 'MUST');
    await expectAbsent(s, e, target, shared.digest);
  });

  await s.check(C, 'mount of an unknown blob: 202 upload', async (e) => {
    const res = await mount(s.repo('mount-c'), unknownDigest(), src);
    e.status(res, 202);
    e.header(res, 'location', undefined, 'MUST');
  });

  await s.check(C, 'mount without from: 201 when another repository has the blob', async (e) => {
    need();
    const target = s.repo('mount-d');
    const res = await mount(target, shared.digest);
    if (!e.status(res, 201, 'MAY')) return;
    await expectCreated(s, e, res, target, shared);
  });
}

async function badUploads(s: Suite, repo: string): Promise<void> {
  const uploads = `/v2/${repo}/blobs/uploads/`;
  for (const [why, name] of [
    ['uppercase', 'UPPER/x'],
    ['empty component', 'a//b'],
    ['dot-dot component', '../x'],
    ['256 characters', `${'a'.repeat(128)}/${'b'.repeat(127)}`],
  ]) {
    await s.check(C, `repository name with ${why}: 400 NAME_INVALID`, async (e) => {
      e.error(await s.req('POST', `/v2/${name}/blobs/uploads/`), 400, 'NAME_INVALID', 'SHOULD');
    });
  }

  const putDigest = async (digest: string, body: Buffer) =>
    s.req('PUT', s.location(await s.startUpload(repo), { digest }), { body, headers: OCTET });

  await s.check(C, 'PUT with a body that does not match ?digest=: 400 DIGEST_INVALID, nothing stored', async (e) => {
    const b = randomBlob(700);
    const claimed = unknownDigest();
    e.error(await putDigest(claimed, b.data), 400, 'DIGEST_INVALID');
    await expectAbsent(s, e, repo, claimed);
    await expectAbsent(s, e, repo, b.digest);
  });

  await s.check(C, 'monolithic POST with a body that does not match ?digest=: 400 DIGEST_INVALID', async (e) => {
    const b = randomBlob(700);
    const claimed = unknownDigest();
    const res = await s.req('POST', `${uploads}?digest=${claimed}`, { body: b.data, headers: OCTET });
    // Registries without single-request uploads ignore the body and open a session.
    if (res.status === 202) e.fail('MAY', `${describe(res)}: answered 202 (no monolithic upload)`);
    else e.error(res, 400, 'DIGEST_INVALID');
    await expectAbsent(s, e, repo, claimed);
    await expectAbsent(s, e, repo, b.digest);
  });

  for (const [why, digest] of [
    ['a malformed digest', 'sha256:xyz'],
    ['an unsupported algorithm', `md5:${crypto.randomBytes(16).toString('hex')}`],
    ['a sha256 digest of the wrong length', `sha256:${crypto.randomBytes(20).toString('hex')}`],
  ]) {
    await s.check(C, `PUT ?digest= with ${why}: 400 DIGEST_INVALID`, async (e) => {
      e.error(await putDigest(digest, Buffer.from('x')), 400, 'DIGEST_INVALID', 'SHOULD');
    });
  }

  await s.check(C, 'PUT without ?digest=: 400 DIGEST_INVALID or BLOB_UPLOAD_INVALID', async (e) => {
    const start = await s.startUpload(repo);
    e.error(await s.req('PUT', s.location(start), { body: Buffer.from('x'), headers: OCTET }), 400, ['DIGEST_INVALID', 'BLOB_UPLOAD_INVALID'], 'SHOULD');
  });

  await s.check(C, 'PATCH with a malformed Content-Range: 400 BLOB_UPLOAD_INVALID or 416', async (e) => {
    const start = await s.startUpload(repo);
    const res = await s.req('PATCH', s.location(start), { body: Buffer.from('abc'), headers: { ...OCTET, 'content-range': 'bytes=abc' } });
    e.error(res, [400, 416], ['BLOB_UPLOAD_INVALID', 'SIZE_INVALID'], 'SHOULD');
  });

  // Present but empty is not "no range": appending the chunk would guess its offset.
  await s.check(C, 'PATCH with an empty Content-Range: 400 BLOB_UPLOAD_INVALID or 416, nothing appended', async (e) => {
    const start = await s.startUpload(repo);
    const res = await s.req('PATCH', s.location(start), { body: Buffer.from('abc'), headers: { ...OCTET, 'content-range': '' } });
    e.error(res, [400, 416], ['BLOB_UPLOAD_INVALID', 'SIZE_INVALID'], 'SHOULD');
    const status = await s.req('GET', s.location(start));
    if (status.status === 204) e.header(status, 'range', /^(bytes=)?0-(0|-1)$/, 'MUST');
  });

  await s.check(C, 'PATCH whose Content-Range disagrees with Content-Length: 400 SIZE_INVALID or 416', async (e) => {
    const start = await s.startUpload(repo);
    const res = await s.req('PATCH', s.location(start), { body: Buffer.from('abcde'), headers: { ...OCTET, 'content-range': '0-9' } });
    e.error(res, [400, 416], ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID'], 'SHOULD');
  });

  // The bytes past the declared length reach the server as a malformed next
  // request; whichever it answers first, the answer must be a spec error.
  await s.check(C, 'Content-Length shorter than the body sent: 400 with an error body, nothing stored', async (e) => {
    const b = randomBlob(2000);
    const start = await s.startUpload(repo);
    const res = await s.client.raw('PUT', s.location(start, { digest: b.digest }), { ...OCTET, 'content-length': '1000' }, b.data);
    if (!res) throw new SetupError('the registry closed the connection without an answer');
    e.error(res, 400, []);
    await expectAbsent(s, e, repo, b.digest);
  });

  await s.check(C, 'Content-Length longer than the body, then hang up: nothing stored', async (e) => {
    const b = randomBlob(64 * 1024);
    const start = await s.startUpload(repo);
    await s.client.raw('PUT', s.location(start, { digest: b.digest }), { ...OCTET, 'content-length': String(b.size) }, b.data.subarray(0, 16 * 1024), {
      hangUpAfterMs: 200,
    });
    await expectAbsent(s, e, repo, b.digest);
    e.status(await s.req('GET', '/v2/'), 200);
  });

  await s.check(C, 'client disconnects mid-PATCH: nothing served; session resumable or gone', async (e) => {
    const b = randomBlob(256 * 1024);
    const sent = 64 * 1024;
    const start = await s.startUpload(repo);
    const loc = s.location(start);
    await s.client.raw('PATCH', loc, { ...OCTET, 'content-length': String(b.size) }, b.data.subarray(0, sent), { hangUpAfterMs: 200 });
    await expectAbsent(s, e, repo, b.digest);
    const status = await s.req('GET', loc);
    if (status.status === 404) return e.error(status, 404, 'BLOB_UPLOAD_UNKNOWN', 'SHOULD');
    e.status(status, 204);
    const range = /^(?:bytes=)?0-(-?\d+)$/.exec(header(status, 'range') ?? '');
    if (!e.that(!!range, 'MUST', `${describe(status)}: Range ${header(status, 'range')} after a broken PATCH`)) return;
    const have = Number(range![1]) + 1;
    e.that(have <= sent, 'MUST', `${describe(status)}: Range claims ${have} bytes, only ${sent} were sent`);
    // Resume from what the registry says it has: the blob must come out whole.
    const res = await s.req('PUT', s.location(status, { digest: b.digest }), {
      body: b.data.subarray(have),
      headers: { ...OCTET, 'content-range': `${have}-${b.size - 1}` },
    });
    if (!e.status(res, 201, 'MAY')) return;
    await expectCreated(s, e, res, repo, b);
  });
}
