// Requests HTTP/1.1 refuses (RFC 9112 §2.3, §3.2) that Node's parser lets
// through: a request line without a version (HTTP/0.9) or with one other than
// 1.0/1.1, and a Host header given twice (a proxy in front may route by the
// other one) or missing from a 1.1 request. They get a 400 with the spec's
// error body, as requests Node cannot parse at all do.
import type http from 'node:http';
import { errorBody } from './errors';

/** Why `req` must be refused, or undefined when it is well formed. */
export function malformed(req: http.IncomingMessage): string | undefined {
  const version = req.httpVersion;
  if (version !== '1.1' && version !== '1.0') return `HTTP version ${version} is not supported (1.0 and 1.1 are)`;
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts++;
  if (hosts > 1) return 'more than one Host header';
  if (hosts === 0 && version === '1.1') return 'no Host header';
  return undefined;
}

function errorHeaders(body: string): Record<string, string | number> {
  return {
    Connection: 'close',
    'Content-Type': 'application/json',
    'Docker-Distribution-API-Version': 'registry/2.0',
    'Content-Length': Buffer.byteLength(body),
  };
}

function malformedBody(reason: string): string {
  return JSON.stringify(errorBody('UNSUPPORTED', 'malformed HTTP request', { reason }));
}

/** Answer a malformed request 400 and close the connection. */
export function refuseMalformed(res: http.ServerResponse, reason: string): void {
  const body = malformedBody(reason);
  res.writeHead(400, errorHeaders(body)).end(body);
}

/** The same answer as raw bytes, for requests Node could not parse (there is no response object). */
export function rawMalformedResponse(status: number, statusText: string, reason: string): string {
  const body = malformedBody(reason);
  const head = Object.entries(errorHeaders(body))
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `HTTP/1.1 ${status} ${statusText}\r\n${head}\r\n${body}`;
}
