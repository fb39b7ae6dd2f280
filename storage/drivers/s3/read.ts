// Reads: ranged GETs, a long read fetched in parts with the next in flight.
import { pipeline, PassThrough, Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { InvalidOffsetError, PathNotFoundError } from '../../driver';
import { META_OFFSET, MiB, type S3Bucket } from './bucket';
import { isMissing, status } from './errors';

/**
 * Reads of at least two of these are fetched as ranged GETs of this size, the
 * next one in flight while the current one streams: an S3 store serves one
 * stream at a fraction of what it serves two (Swift on loopback: ~240 MB/s
 * relayed with one, ~300 with two).
 */
export const READ_PART = 8 * MiB;
/** What all reads of one driver may hold of parts fetched ahead (a part each, reserved when the read starts): a store busy with many reads gains little from more, and each costs memory. */
export const READ_AHEAD_BUDGET = 2 * READ_PART;
/** What the part being streamed may hold before its GET is paused. */
const READ_HEAD_BUFFER = 1 * MiB;

/** GET [offset, end) of an object; end undefined = to its end. */
export async function getRange(b: S3Bucket, path: string, offset: number, end?: number, ifMatch?: string): Promise<{ body: Readable; etag?: string }> {
  const key = b.key(path);
  const range = offset > 0 || end !== undefined ? `bytes=${offset}-${end !== undefined ? end - 1 : ''}` : undefined;
  let res;
  try {
    res = await b.send<GetObjectCommandOutput>(
      new GetObjectCommand({ Bucket: b.bucket, Key: key, Range: range, IfMatch: ifMatch }),
      'GetObject',
    );
  } catch (err) {
    if (isMissing(err)) throw new PathNotFoundError(path);
    if (status(err) === 416) {
      // Reading at the very end (or an empty object) is an empty read, beyond it an error.
      const h = await b.head(key);
      if (!h) throw new PathNotFoundError(path);
      if (offset > (h.ContentLength ?? 0)) throw new InvalidOffsetError(path, offset);
      return { body: Readable.from([]) };
    }
    throw err;
  }
  const body = res.Body as Readable;
  if (res.Metadata?.[META_OFFSET] !== undefined) {
    body.destroy();
    // S3 cannot read the parts of an unfinished multipart upload.
    throw new Error(`${path} is being written; commit it before reading`);
  }
  return { body, etag: res.ETag };
}

/**
 * The parts of [from, end) after the first, in order, the next one in
 * flight while one streams. Later parts must match the first one's ETag, so
 * a read never mixes two versions of an object.
 */
export async function* readParts(b: S3Bucket, path: string, first: { body: Readable; etag?: string }, from: number, end: number): AsyncGenerator<Buffer> {
  let pos = from;
  // The part behind the one streaming may fill up whole: the read's reserved part.
  const ahead = () => {
    if (pos >= end) return undefined;
    const to = Math.min(pos + READ_PART, end);
    const part = partRead(getRange(b, path, pos, to, first.etag).then((r) => r.body), READ_PART);
    pos = to;
    return part;
  };
  let current: Readable | undefined = partRead(Promise.resolve(first.body), READ_HEAD_BUFFER);
  let next = ahead();
  try {
    while (current) {
      yield* current;
      current = next;
      next = ahead();
    }
  } finally {
    current?.destroy();
    next?.destroy();
  }
}

/**
 * One ranged GET of a part read, as a stream that holds up to `limit` bytes of
 * what arrives (its high-water mark) before the GET is paused. Destroying it
 * ends the GET, even one not answered yet.
 */
function partRead(body: Promise<Readable>, limit: number): Readable {
  // The writable side takes a socket read or so at a time; the readable side holds the part.
  const part = new PassThrough({ readableHighWaterMark: limit, writableHighWaterMark: 64 * 1024 });
  // A part fails its reader when read; one fetched ahead and never read fails no one.
  part.on('error', () => undefined);
  body.then(
    // Dropped before its GET answered: end the GET. (Node 24 and later throw, where 20 and
    // 22 called back, when asked to pipe into a destroyed stream: an unhandled rejection.)
    (b) => (part.destroyed ? b.destroy() : pipeline(b, part, () => undefined)),
    (e) => part.destroy(e),
  );
  return part;
}

export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
