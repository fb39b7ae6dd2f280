// Registry errors raised by the store and the HTTP layer alike. The codes are
// the distribution-spec's; server/errors.ts maps each code to an HTTP status.
export type ErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNAVAILABLE';

export class RegistryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    /** HTTP status where the code's usual one does not fit (e.g. 413 for an oversized manifest). */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export const err = (code: ErrorCode, message: string, detail?: unknown, status?: number) => new RegistryError(code, message, detail, status);
