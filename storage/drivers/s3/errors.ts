// How S3 SDK errors map to the driver's: missing keys and an unreachable or failing store.
import { StorageUnavailableError } from '../../driver';

export function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

export function isMissing(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || status(err) === 404;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** A StorageUnavailableError when the store could not be reached, timed out or is failing (5xx, throttling). */
export function unavailable(err: unknown, timedOut: boolean, what: string): StorageUnavailableError | undefined {
  const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number } };
  const code = status(err);
  if (timedOut || e?.name === 'AbortError') return new StorageUnavailableError(`S3 ${what} timed out`, err);
  if (
    (code !== undefined && code >= 500) ||
    (e?.code && NETWORK_CODES.has(e.code)) ||
    ['TimeoutError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout', 'Throttling', 'ThrottlingException'].includes(e?.name)
  ) {
    return new StorageUnavailableError(`S3 ${what} failed: ${e.name}${e.message ? ': ' + e.message : ''}`, err);
  }
  return undefined;
}
