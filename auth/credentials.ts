// Parsing of the Authorization header, defensive about size and shape: any
// malformed value is "invalid", never an exception.

const MAX_HEADER = 8192;

export type Credential =
  | { kind: 'none' }
  | { kind: 'invalid' }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'bearer'; token: string };

export function parseAuthorization(header: string | undefined): Credential {
  if (header === undefined || header === '') return { kind: 'none' };
  if (header.length > MAX_HEADER) return { kind: 'invalid' };
  const m = /^([A-Za-z]+) +([A-Za-z0-9+/=._~-]+) *$/.exec(header);
  if (!m) return { kind: 'invalid' };
  const scheme = m[1].toLowerCase();
  if (scheme === 'bearer') return { kind: 'bearer', token: m[2] };
  if (scheme !== 'basic') return { kind: 'invalid' };
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon > 256) return { kind: 'invalid' };
  return { kind: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** A challenge parameter value, with characters that would break the quoting removed. */
export function quoteParam(v: string): string {
  return `"${v.replace(/["\\\r\n]/g, '')}"`;
}
