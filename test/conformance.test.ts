// The conformance suite run in-process: against berth (strict: every SHOULD
// and MAY that issue #2 promises must hold), against berth with deletes off,
// and against distribution 2.8.2 to check the suite itself, once plain and
// once behind token auth to prove the suite's Bearer flow.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import t from 'tap';
import { runConformance } from '../conformance/index';
import { assertEach } from './helpers/conformance';
import { startBerth, tempDir } from './helpers/berth';
import { haveDistribution, startDistribution } from './helpers/distribution';
import { freePort } from './helpers/process';

t.test('berth passes the whole suite, strictly', async (tt) => {
  const berth = await startBerth({ deleteEnabled: true });
  tt.teardown(async () => {
    await berth.stop();
    fs.rmSync(berth.root, { recursive: true, force: true });
  });
  const report = await runConformance({ url: berth.url, strict: true });
  assertEach(tt, report.results);
  tt.ok(report.passed > 100, `a full run has over 100 checks (${report.passed} passed)`);
});

t.test('berth with deletes disabled answers 405 UNSUPPORTED and keeps content', async (tt) => {
  const berth = await startBerth({ deleteEnabled: false });
  tt.teardown(async () => {
    await berth.stop();
    fs.rmSync(berth.root, { recursive: true, force: true });
  });
  const report = await runConformance({ url: berth.url, strict: true, deletesDisabled: true, skip: ['pull', 'push', 'discovery'] });
  assertEach(tt, report.results);
});

// distribution 2.8.2 predates parts of the spec; these are the checks it is
// known to fail (see conformance/README.md). A change here means the suite's
// judgement changed, which must be deliberate.
const DISTRIBUTION_FAILS = [
  'push: chunk sent again (repeated range): 416',
  'push: chunk out of order (gap): 416',
  'push: second chunk in order: 202, Range grows',
  'push: PUT ?digest= with the final chunk: 201, blob complete',
  'push: repository name with uppercase: 400 NAME_INVALID',
  'push: repository name with 256 characters: 400 NAME_INVALID',
  'push: PATCH with a malformed Content-Range: 400 BLOB_UPLOAD_INVALID or 416',
  'push: PATCH with an empty Content-Range: 400 BLOB_UPLOAD_INVALID or 416, nothing appended',
  'push: PATCH whose Content-Range disagrees with Content-Length: 400 SIZE_INVALID or 416',
  'pull: GET blob with an unsatisfiable Range: 416',
  'discovery: GET tags/list: 200, name and every tag in lexical order',
  'discovery: GET tags/list?n=2: first two tags and a Link to the next page',
  'discovery: GET tags/list?n=2&last=<tag>: the two tags after it',
  'discovery: GET tags/list?last=<last tag>: empty list, no Link',
  'base: no request was answered with a 5xx',
];

t.test('the suite judges distribution 2.8.2 as documented', { skip: !haveDistribution() && !process.env.CI && 'docker-registry not installed' }, async (tt) => {
  const dist = await startDistribution();
  tt.teardown(async () => {
    await dist.stop();
    fs.rmSync(dist.root, { recursive: true, force: true });
  });
  const report = await runConformance({ url: dist.url });
  const failed = report.results.filter((r) => r.outcome === 'fail').map((r) => `${r.category}: ${r.name}`);
  tt.same(failed.sort(), [...DISTRIBUTION_FAILS].sort(), 'failing checks are exactly the known ones');
  tt.ok(report.passed > 50, `most checks pass (${report.passed} passed, ${report.warned} warned)`);
});

/**
 * A minimal Docker token service for distribution's `auth: token`: Basic
 * credentials in, an RS256 JWT out granting every requested scope, signed by
 * a throw-away self-signed certificate (sent as x5c) that distribution trusts.
 */
async function startTokenService(dir: string, user: string, password: string) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=conformance-token'], { stdio: 'ignore' });
  const der = new crypto.X509Certificate(fs.readFileSync(cert)).raw.toString('base64');
  const privateKey = fs.readFileSync(key);
  const expected = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    requests.push(u.search);
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const access = u.searchParams.getAll('scope').map((sc) => {
      const [type, ...rest] = sc.split(':');
      const actions = rest.pop() ?? '';
      return { type, name: rest.join(':'), actions: actions.split(',') };
    });
    const token = jwt.sign({ access }, privateKey, {
      algorithm: 'RS256',
      issuer: 'conformance-issuer',
      audience: u.searchParams.get('service') ?? '',
      subject: user,
      expiresIn: 300,
      notBefore: -10,
      jwtid: crypto.randomUUID(),
      header: { alg: 'RS256', x5c: [der] },
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { realm: `http://127.0.0.1:${port}/token`, cert, requests, close: () => new Promise((r) => server.close(r)) };
}

t.test('the suite authenticates through a Bearer token service (distribution with auth: token)', { skip: !haveDistribution() && !process.env.CI && 'docker-registry not installed' }, async (tt) => {
  const dir = tempDir('conformance-auth-');
  const tokens = await startTokenService(dir, 'alice', 's3cret');
  const yaml = ['auth:', '  token:', `    realm: ${tokens.realm}`, '    service: conformance-registry', '    issuer: conformance-issuer', `    rootcertbundle: ${tokens.cert}`].join('\n');
  const dist = await startDistribution({ extraYaml: yaml });
  tt.teardown(async () => {
    await dist.stop();
    await tokens.close();
    fs.rmSync(dist.root, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const anonymous = await fetch(`${dist.url}/v2/`);
  tt.equal(anonymous.status, 401, 'the registry demands a token');
  const report = await runConformance({ url: dist.url, username: 'alice', password: 's3cret' });
  const failed = report.results.filter((r) => r.outcome === 'fail').map((r) => `${r.category}: ${r.name}`);
  tt.same(failed.sort(), [...DISTRIBUTION_FAILS].sort(), 'with tokens, the same checks pass and fail as without');
  tt.ok(tokens.requests.some((q) => q.includes('scope=repository')), 'repository-scoped tokens were requested');
  tt.ok(tokens.requests.length < 200, `tokens are reused, not fetched per request (${tokens.requests.length} token requests)`);
});
