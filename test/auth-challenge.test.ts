// berth's Bearer challenges are the ones CNCF distribution 2.8.2 sends for the same request
// and token, the two run side by side. Docker's token specification has the scopes a
// request needs space-separated in one `scope` parameter (a client then asks the token
// service for each with a `scope` query parameter of its own); a cross-repository mount
// needs two repositories, so its challenge names both there. containers/image reads only
// a single scope from an insufficient_scope challenge and logs "Failed to parse the
// authentication scope" for this one, from distribution as from berth.
import crypto from 'node:crypto';
import fs from 'node:fs';
import jwt from 'jsonwebtoken';
import t from 'tap';
import { writeChain } from './helpers/auth';
import { startBerth, tempDir } from './helpers/berth';
import { inCI } from './helpers/clients';
import { haveDistribution, startDistribution } from './helpers/distribution';

const SERVICE = 'registry.test';
const ISSUER = 'issuer.test';
const REALM = 'http://auth.test/token';
const DIGEST = `sha256:${'a'.repeat(64)}`;
type Access = { type: string; name: string; actions: string[] }[];

/** A challenge's parameters; scope entries (and each one's actions) sorted, as distribution's come in map order. */
function params(challenge: string | null): Record<string, string> {
  const p = Object.fromEntries([...(challenge ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  if (p.scope) p.scope = p.scope.split(' ').map((s) => s.replace(/[^:]*$/, (a) => a.split(',').sort().join(','))).sort().join(' ');
  return { scheme: (challenge ?? '').split(' ')[0], ...p };
}

t.test('the same challenges as distribution, a mount with two repositories included', { skip: !haveDistribution() && !inCI() && 'docker-registry not installed' }, async (t) => {
  const dir = tempDir('berth-challenge-');
  const chain = writeChain(dir, 'tok');
  const berth = await startBerth({
    env: { REGISTRY_AUTH_TOKEN_REALM: REALM, REGISTRY_AUTH_TOKEN_SERVICE: SERVICE, REGISTRY_AUTH_TOKEN_ISSUER: ISSUER, REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: chain.ca },
  });
  t.teardown(() => berth.stop());
  const dist = await startDistribution({
    extraYaml: ['auth:', '  token:', `    realm: ${REALM}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${chain.ca}`].join('\n'),
  });
  t.teardown(() => dist.stop());
  // a token both trust: signed by the leaf, its chain in x5c
  const x5c = [chain.leafCert, chain.ca].map((f) => fs.readFileSync(f, 'utf8').replace(/-----[^-]+-----|\s/g, ''));
  const token = (access: Access) =>
    jwt.sign({ access }, chain.leafKey.privateKey, {
      algorithm: 'RS256', issuer: ISSUER, audience: SERVICE, subject: 'alice', expiresIn: 300, jwtid: crypto.randomUUID(), header: { alg: 'RS256', x5c },
    });
  const pushOnly = token([{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
  const pullOnly = token([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
  const mount = `/v2/team/app/blobs/uploads/?mount=${DIGEST}&from=base/os`;
  const cases: [string, string, string, string?][] = [
    ['the base endpoint', 'GET', '/v2/'],
    ['a pull', 'GET', '/v2/team/app/tags/list'],
    ['the catalog', 'GET', '/v2/_catalog'],
    ['a push', 'POST', '/v2/team/app/blobs/uploads/'],
    ['a mount', 'POST', mount],
    ['a mount, the token lacking the source', 'POST', mount, pushOnly],
    ['a delete, the token lacking it', 'DELETE', `/v2/team/app/manifests/${DIGEST}`, pullOnly],
  ];
  for (const [what, method, path, bearer] of cases) {
    const headers = bearer ? { authorization: `Bearer ${bearer}` } : undefined;
    const [ours, theirs] = await Promise.all([berth.url, dist.url].map((u) => fetch(u + path, { method, headers })));
    t.equal(ours.status, theirs.status, `${what}: ${theirs.status}`);
    t.same(params(ours.headers.get('www-authenticate')), params(theirs.headers.get('www-authenticate')), `${what}: ${theirs.headers.get('www-authenticate')}`);
  }
  const challenge = (await fetch(berth.url + mount, { method: 'POST', headers: { authorization: `Bearer ${pushOnly}` } })).headers.get('www-authenticate');
  t.equal(challenge, `Bearer realm="${REALM}",service="${SERVICE}",scope="repository:team/app:pull,push repository:base/os:pull",error="insufficient_scope"`, 'the mount, exactly');
});
