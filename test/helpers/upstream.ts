// An upstream in the shape of Docker Hub for the pull-through cache tests and
// benchmark: CNCF distribution 2.8.2 behind berth's token service (a 401 Bearer
// challenge, a token endpoint on another port, tokens scoped to repositories),
// its access log kept so tests can count what reached it. `library/**` is
// public; `private/**` needs the user `mirror`; `pusher` may do anything.
import fs from 'node:fs';
import path from 'node:path';
import { addUser, writeChain } from './auth';
import { CLI, tempDir } from './berth';
import { requestsIn, startDistribution, type Distribution, type LoggedRequest } from './distribution';
import { OciClient } from './oci-client';
import { freePort, launch, type Managed } from './process';

export const UPSTREAM_USERS = { pusher: 'pusher-secret-1', mirror: 'mirror-secret-1' };

const POLICY = `
admins: [pusher]
rules:
  - repository: "library/**"
    grant:
      anonymous: [pull]
  - repository: "private/**"
    grant:
      mirror: [pull]
`;

export interface TokenUpstream {
  /** distribution's URL and host:port (what a cache's remoteurl points at). */
  url: string;
  host: string;
  tokenUrl: string;
  /** The registry's requests so far (its access log), also across restarts. */
  requests(): LoggedRequest[];
  /** How many requests with this method reached a path matching `re`. */
  count(method: string, re: RegExp): number;
  /** A bearer token for `scopes` (e.g. repository:library/app:pull), anonymous or as a user. */
  token(scopes: string[], user?: keyof typeof UPSTREAM_USERS): Promise<string>;
  /** A client whose token may push and pull `repos`. */
  pusher(repos: string[]): Promise<OciClient>;
  /** Stop distribution (SIGKILL: a crash) or start it again on the same port and store. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTokenUpstream(): Promise<TokenUpstream> {
  const dir = tempDir('berth-upstream-');
  const chain = writeChain(dir, 'upstream');
  const users = path.join(dir, 'users.yml');
  for (const [name, password] of Object.entries(UPSTREAM_USERS)) await addUser(users, name, password);
  fs.writeFileSync(path.join(dir, 'policy.yml'), POLICY);
  const tokenPort = await freePort();
  const tokenConfig = path.join(dir, 'token.yml');
  fs.writeFileSync(
    tokenConfig,
    [
      'tokenserver:',
      `  addr: 127.0.0.1:${tokenPort}`,
      '  issuer: upstream-issuer',
      `  key: ${chain.leafKey.keyPath}`,
      `  certificate: ${chain.chain}`,
      `  users: ${users}`,
      `  policy: ${path.join(dir, 'policy.yml')}`,
      '  services: [upstream-registry]',
      '',
    ].join('\n'),
  );
  const tokens: Managed = await launch({ cmd: process.execPath, args: [CLI, 'token-server', '--config', tokenConfig], port: tokenPort, readyPath: '/healthz', env: { ...process.env, REGISTRY_LOG_LEVEL: 'warn' } });
  const tokenUrl = `${tokens.url}/token`;
  const root = path.join(dir, 'store');
  const port = await freePort();
  const auth = ['auth:', '  token:', `    realm: ${tokenUrl}`, '    service: upstream-registry', '    issuer: upstream-issuer', `    rootcertbundle: ${chain.ca}`].join('\n');
  const start = () => startDistribution({ root, port, extraYaml: auth, accessLog: true });
  let dist: Distribution | undefined = await start().catch(async (e) => {
    await tokens.stop();
    throw e;
  });
  let earlier = '';
  const token = async (scopes: string[], user?: keyof typeof UPSTREAM_USERS) => {
    const q = new URLSearchParams({ service: 'upstream-registry' });
    for (const s of scopes) q.append('scope', s);
    const basic = user && Buffer.from(`${user}:${UPSTREAM_USERS[user]}`).toString('base64');
    const res = await fetch(`${tokenUrl}?${q}`, { headers: basic ? { authorization: `Basic ${basic}` } : {} });
    return ((await res.json()) as { token: string }).token;
  };
  const requests = () => requestsIn(earlier + (dist?.output() ?? ''));
  return {
    url: dist.url,
    host: dist.host,
    tokenUrl,
    requests,
    count: (method, re) => requests().filter((r) => r.method === method && re.test(r.path)).length,
    token,
    async pusher(repos) {
      const t = await token(repos.map((r) => `repository:${r}:pull,push`), 'pusher');
      return new OciClient(`http://127.0.0.1:${port}`, { headers: { authorization: `Bearer ${t}` } });
    },
    async kill() {
      earlier += dist?.output() ?? '';
      await dist?.kill();
      dist = undefined;
    },
    async restart() {
      dist = await start();
    },
    async stop() {
      await Promise.all([dist?.stop(), tokens.stop()]);
    },
  };
}
