// The one error table: spec error code -> HTTP status, and the JSON body
// {"errors":[{"code","message","detail"}]} every failure is answered with.
import type Koa from 'koa';
import { InvalidOffsetError, PathNotFoundError, StorageUnavailableError, WriteLostError } from '../storage/driver';
import { RegistryError, type ErrorCode } from '../storage/errors';

export const STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNAVAILABLE: 503,
};

export function errorBody(code: string, message: string, detail?: unknown) {
  return { errors: [{ code, message, detail: detail ?? null }] };
}

export function sendError(ctx: Koa.Context, e: RegistryError, status = e.status ?? STATUS[e.code]): void {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = errorBody(e.code, e.message, e.detail);
}

/** Translate what lower layers throw into a RegistryError, or undefined for a real bug. */
export function toRegistryError(e: unknown): RegistryError | undefined {
  if (e instanceof RegistryError) return e;
  if (e instanceof StorageUnavailableError) return new RegistryError('UNAVAILABLE', 'storage backend unavailable, retry later', { reason: e.message });
  if (e instanceof InvalidOffsetError) return new RegistryError('RANGE_INVALID', 'requested range not satisfiable');
  if (e instanceof PathNotFoundError) return new RegistryError('BLOB_UNKNOWN', 'content vanished while it was being read');
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error)?.message === 'aborted') {
    return new RegistryError('BLOB_UPLOAD_INVALID', 'the client closed the connection before the body was complete');
  }
  if (code === 'ENOSPC') return new RegistryError('UNAVAILABLE', 'storage is full');
  if (storageRefused(e)) return new RegistryError('UNAVAILABLE', 'storage refused the write (permissions or a read-only mount); retry once an operator has fixed it');
  if (e instanceof WriteLostError) return new RegistryError('UNAVAILABLE', 'storage failed to keep the data written; retry (an upload starts over)');
  return undefined;
}

/** The store refused an operation (a directory berth may not write, a read-only mount): the operator's to fix. */
export function storageRefused(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}
