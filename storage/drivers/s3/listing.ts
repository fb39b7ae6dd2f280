// Listings: S3 has keys, not directories; a directory is a key prefix, listed
// with a delimiter (its children) or flat (everything under it).
import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { PathNotFoundError, type FileInfo, type ListPage } from '../../driver';
import { LIST_MAX, type S3Bucket } from './bucket';

/** One page of direct children of a key prefix (delimiter listing). */
async function listChildren(b: S3Bucket, prefix: string, startAfter?: string, token?: string) {
  const res = await b.send<ListObjectsV2CommandOutput>(
    new ListObjectsV2Command({
      Bucket: b.bucket,
      Prefix: prefix,
      Delimiter: '/',
      MaxKeys: LIST_MAX,
      StartAfter: token ? undefined : startAfter,
      ContinuationToken: token,
    }),
    'ListObjectsV2',
  );
  const names: string[] = [];
  let last = '';
  for (const o of res.Contents ?? []) {
    const name = o.Key!.slice(prefix.length);
    if (name) names.push(name);
    if (o.Key! > last) last = o.Key!;
  }
  for (const p of res.CommonPrefixes ?? []) {
    const name = p.Prefix!.slice(prefix.length, -1);
    if (name) names.push(name);
    if (p.Prefix! > last) last = p.Prefix!;
  }
  return { names, last, next: res.IsTruncated ? res.NextContinuationToken : undefined };
}

export async function list(b: S3Bucket, path: string): Promise<string[]> {
  const prefix = b.dirPrefix(path);
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await listChildren(b, prefix, undefined, token);
    names.push(...page.names);
    token = page.next;
  } while (token);
  if (!names.length) throw new PathNotFoundError(path);
  return [...new Set(names)].sort();
}

/**
 * S3 lists in key order, where a directory "foo" sorts as "foo/", after
 * "foo-bar" and "foo.x"; names are paged in plain name order. A name can
 * only appear later in key order than a greater name if it is a directory
 * whose name is a prefix of that greater name followed by a character
 * below '/', so reading on up to that prefix + '/' settles the page.
 */
export async function listPage(b: S3Bucket, path: string, after: string | undefined, limit: number): Promise<ListPage> {
  const prefix = b.dirPrefix(path);
  const found = new Set<string>();
  let token: string | undefined;
  for (;;) {
    const page = await listChildren(b, prefix, after !== undefined ? prefix + after : undefined, token);
    for (const n of page.names) if (after === undefined || n > after) found.add(n);
    token = page.next;
    if (!token) break;
    if (found.size > limit) {
      const edge = [...found].sort()[limit];
      const bound = prefix + shortestLowerPrefix(edge);
      if (page.last >= bound) break;
    }
  }
  const sorted = [...found].sort();
  if (sorted.length > limit) return { names: sorted.slice(0, limit), next: sorted[limit - 1] };
  if (!sorted.length && after === undefined) throw new PathNotFoundError(path);
  return { names: sorted };
}

/**
 * One ListObjectsV2 with delimiter "/<childPrefix>" groups all keys of a
 * marked directory into one common prefix, so this costs one request per
 * 1,000 marked directories however many keys they hold.
 */
export async function listMarkedDirs(b: S3Bucket, path: string, childPrefix: string): Promise<string[]> {
  const prefix = b.dirPrefix(path);
  const delimiter = '/' + childPrefix;
  const out: string[] = [];
  let token: string | undefined;
  do {
    const res: ListObjectsV2CommandOutput = await b.send(
      new ListObjectsV2Command({ Bucket: b.bucket, Prefix: prefix, Delimiter: delimiter, MaxKeys: LIST_MAX, ContinuationToken: token }),
      'ListObjectsV2',
    );
    for (const p of res.CommonPrefixes ?? []) {
      const rel = p.Prefix!.slice(prefix.length, -delimiter.length);
      if (rel) out.push(rel);
    }
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Every object under a key prefix, in key order (flat listing: one request per 1,000 keys). */
export async function* objects(b: S3Bucket, prefix: string) {
  let token: string | undefined;
  do {
    const res: ListObjectsV2CommandOutput = await b.send(
      new ListObjectsV2Command({ Bucket: b.bucket, Prefix: prefix, MaxKeys: LIST_MAX, ContinuationToken: token }),
      'ListObjectsV2',
    );
    for (const o of res.Contents ?? []) yield { key: o.Key!, size: o.Size ?? 0, modTime: o.LastModified ?? new Date(0) };
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
  } while (token);
}

/**
 * Walks a flat listing: keys under a common prefix are contiguous in key
 * order, so directories are reported when their first key shows up, before
 * their contents, and a skipped directory is a prefix to pass over.
 */
export async function walk(b: S3Bucket, path: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void> {
  const prefix = b.dirPrefix(path);
  const base = path === '/' ? '' : path;
  const seenDirs = new Set<string>();
  let skipped: string | undefined;
  let any = false;
  for await (const o of objects(b, prefix)) {
    any = true;
    if (skipped && o.key.startsWith(skipped)) continue;
    skipped = undefined;
    const parts = o.key.slice(prefix.length).split('/');
    let rel = '';
    let skip = false;
    for (let i = 0; i < parts.length - 1 && !skip; i++) {
      rel += '/' + parts[i];
      if (seenDirs.has(rel)) continue;
      seenDirs.add(rel);
      if ((await fn({ path: base + rel, size: 0, modTime: o.modTime, isDir: true })) === 'skip') {
        skipped = prefix + rel.slice(1) + '/';
        skip = true;
      }
    }
    if (!skip && parts[parts.length - 1]) {
      await fn({ path: base + rel + '/' + parts[parts.length - 1], size: o.size, modTime: o.modTime, isDir: false });
    }
  }
  if (!any) throw new PathNotFoundError(path);
}

/** The shortest proper prefix p of name with name[p.length] < '/', plus '/'; name itself if none. */
function shortestLowerPrefix(name: string): string {
  for (let i = 1; i < name.length; i++) if (name[i] < '/') return name.slice(0, i) + '/';
  return name;
}
