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
  /** The registry's requests so far (its access log, complete up to now: see settle), also across restarts. */
  requests(): Promise<LoggedRequest[]>;
  /** How many requests with this method reached a path matching `re` so far. */
  count(method: string, re: RegExp): Promise<number>;
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
  const logged = () => requestsIn(earlier + (dist?.output() ?? ''));
  // distribution logs a request once its response went out, so a request just
  // answered may not be in the log yet. A marker request sent now is logged
  // after it: once the marker is there, the log holds everything before it.
  let marks = 0;
  const settle = async () => {
    if (!dist) return;
    const mark = `/v2/?settled=${++marks}`;
    await (await fetch(`${dist.url}${mark}`)).arrayBuffer();
    for (const deadline = Date.now() + 10_000; !logged().some((r) => r.path === mark); ) {
      if (Date.now() > deadline) throw new Error(`the upstream did not log ${mark}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const requests = async () => {
    await settle();
    return logged().filter((r) => !r.path.startsWith('/v2/?settled='));
  };
  return {
    url: dist.url,
    host: dist.host,
    tokenUrl,
    requests,
    count: async (method, re) => (await requests()).filter((r) => r.method === method && re.test(r.path)).length,
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
