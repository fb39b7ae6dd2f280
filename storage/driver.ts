// The storage driver interface: a small key/value-with-directories API that
// every backend (filesystem, S3) implements. It knows nothing of OCI: keys are
// '/'-separated paths such as "/docker/registry/v2/blobs/sha256/ab/abcd.../data".
import type { Readable } from 'node:stream';

export interface FileInfo {
  path: string;
  size: number;
  modTime: Date;
  isDir: boolean;
}

/**
 * A resumable writer. Data written is durable once close() or commit()
 * resolves; until commit() the content may be incomplete, so callers write to
 * a temporary key and move it into place.
 */
export interface FileWriter {
  /**
   * Append a chunk; resolves when the driver has accepted it (backpressure).
   * As with a Node stream, the driver may still hold the chunk afterwards:
   * the caller must not modify it.
   */
  write(chunk: Buffer): Promise<void>;
  /** Bytes in the file so far, including what an earlier writer appended. */
  readonly size: number;
  /** Persist what was written so that a later writer(path, true) can append. */
  close(): Promise<void>;
  /** Finalise: the content is complete and durable (fsync / complete multipart). */
  commit(): Promise<void>;
  /** Throw away everything written (the whole file). */
  cancel(): Promise<void>;
}

export interface ListPage {
  /** Child names (not full paths), sorted. Directories and files alike. */
  names: string[];
  /** Set when more names follow; pass it back as `after`. */
  next?: string;
}

export interface StorageDriver {
  /** Short name for logs and metrics: "filesystem", "s3". */
  readonly name: string;

  getContent(path: string): Promise<Buffer>;
  /** Atomically replace the content at path (readers see old or new, never partial). */
  putContent(path: string, content: Buffer): Promise<void>;
  /**
   * Stream [offset, end) of a file; end defaults to the file's size. A backend
   * of local files may attach the open descriptor (see localFile).
   */
  reader(path: string, offset?: number, end?: number): Promise<Readable>;
  /** A writer for path; append=true continues a file an earlier writer closed. */
  writer(path: string, append: boolean): Promise<FileWriter>;
  stat(path: string): Promise<FileInfo>;
  /** Names of the direct children of a directory, sorted; PathNotFoundError if none. */
  list(path: string): Promise<string[]>;
  /** Up to `limit` sorted child names strictly after `after` (for paging without full walks). */
  listPage(path: string, after: string | undefined, limit: number): Promise<ListPage>;
  /** Move a file; dst is replaced atomically if it exists. */
  move(src: string, dst: string): Promise<void>;
  /** Delete a file or a whole directory tree; PathNotFoundError if nothing was there. */
  delete(path: string): Promise<void>;
  /**
   * Depth-first walk under path, calling fn for every file and directory.
   * fn may return 'skip' to not descend into a directory.
   */
  walk(path: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void>;
  /**
   * Optional, for backends where listing directory by directory is slow (S3):
   * every directory below `path`, at any depth, that has a direct child whose
   * name starts with `childPrefix`, as paths relative to `path` (unsorted).
   * Nothing inside such a child is looked at.
   */
  listMarkedDirs?(path: string, childPrefix: string): Promise<string[]>;
  /**
   * Optional, for backends whose sorted listing reads the whole directory (a
   * filesystem): the children of a directory in no particular order, a batch
   * at a time, until `fn` returns false. A reader that needs a few children
   * of a large directory stops early instead of reading it all.
   * PathNotFoundError if there is no such directory.
   */
  scan?(path: string, fn: (names: string[]) => boolean | Promise<boolean>): Promise<void>;
  /**
   * Optional, for backends where moving a file copies it (S3): a writer whose
   * bytes appear at path only on commit(), all at once; writers racing on one
   * path do not disturb each other (the last commit wins); cancel() leaves
   * nothing; there is no close() to resume from.
   */
  atomicWriter?(path: string): Promise<FileWriter>;
  /** With atomicWriter: give up atomic writes under path begun before `before` (their writers died). */
  abortStaleWrites?(path: string, before: Date): Promise<number>;
  /** A URL a client may fetch the content from directly (S3 presigned), or undefined. */
  redirectURL(path: string, method: 'GET' | 'HEAD'): Promise<string | undefined>;
  /** Cheap reachability probe for readiness checks. */
  healthCheck(): Promise<void>;
  /** Release connections, timers. */
  close(): Promise<void>;
}

/**
 * The local file behind a reader: the stream reads [start, end) of fd. A
 * transport that can copy file to socket inside the kernel (sendfile) may send
 * that range itself instead of reading the stream; either way whoever holds
 * the stream destroys it at the end, which closes fd.
 */
export interface LocalFileRange {
  fd: number;
  start: number;
  end: number;
}

const LOCAL_FILE = Symbol('berth.localFile');

export function withLocalFile<T extends Readable>(stream: T, range: LocalFileRange): T {
  return Object.assign(stream, { [LOCAL_FILE]: range });
}

export function localFile(stream: unknown): LocalFileRange | undefined {
  return (stream as { [LOCAL_FILE]?: LocalFileRange } | null)?.[LOCAL_FILE];
}

/** The path does not exist. */
export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}

/** The backend could not be reached or timed out; the request may be retried later. */
export class StorageUnavailableError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'StorageUnavailableError';
  }
}

/**
 * Flushing bytes written earlier to the backend failed (a datasync or fsync):
 * the disk may not hold them, so whatever was built on them starts over.
 */
export class WriteLostError extends Error {
  constructor(readonly path: string, override readonly cause: unknown) {
    super(`data written to ${path} may not have reached storage: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'WriteLostError';
  }
}

/** Requested range does not fit the file. */
export class InvalidOffsetError extends Error {
  constructor(readonly path: string, readonly offset: number) {
    super(`invalid offset ${offset} for ${path}`);
    this.name = 'InvalidOffsetError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof PathNotFoundError;
}
