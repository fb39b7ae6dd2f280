// Run deploy/compose.yaml for real: `docker-compose up -d --build` builds berth and its
// S3 store (deploy/s3: Swift s3api from Debian packages) on the offline base image
// (deploy/scripts/base-image.sh), then a user made with the documented `run --rm -T
// token user add`, docker login, push and pull through token auth, anonymous pulls
// refused, and the pushed image's blobs read back from the bucket with berth's own S3
// driver. Teardown: `down -v --rmi all` (images of this run only).
// The engine (test/helpers/engines.ts) has no bridge networking, so an override puts every
// service on the host network (token-keys on none) on free loopback ports, the service
// names replaced by 127.0.0.1 through REGISTRY_* variables; compose merges it
// (`docker-compose config`) and the published ports are dropped from the result.
// Needs root, docker.io, docker-compose (v1 1.29 from Debian is enough), and debootstrap
// unless the base tarball is cached. Uses the engine at DOCKER_HOST, or starts one.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { S3Driver } from '../storage/drivers/s3';
import { mustRun, run } from './helpers/clients';
import { dockerEnv, dockerPushPull, imageTestNeeds, localCACerts } from './helpers/engines';
import { waitFor } from './helpers/ops-client';
import { freePort } from './helpers/process';
import { freePortRun } from './helpers/s3';

const REPO = path.resolve(__dirname, '../..');
const BASE_SCRIPT = path.join(REPO, 'deploy/scripts/base-image.sh');

// two image builds (one of them npm ci) take minutes on a busy machine
t.setTimeout(1_200_000);

const { unmet, skip } = imageTestNeeds(['docker', 'dockerd', 'docker-compose', 'tar']);

t.test('compose.yaml: registry, token service and S3 store, end to end', { skip, timeout: 1_150_000 }, async (t) => {
  if (unmet) return t.fail(`${unmet}; CI=true requires it`);
  const env = await dockerEnv(t);
  const docker = async (...args: string[]) => (await mustRun('docker', args, { env })).stdout.trim();
  const began = Date.now();
  const secs = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

  let start = Date.now();
  const base = (await mustRun(BASE_SCRIPT, [], { env, timeoutMs: 600_000 })).stdout.trim();
  t.comment(`base image ${base}: ${secs(start)}`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compose-test-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const id = crypto.randomBytes(3).toString('hex');
  const [regPort, tokenPort, s3Port] = [await freePort(), await freePort(), await freePortRun()];
  const registry = `127.0.0.1:${regPort}`;
  const s3Secret = `secret-${id}`;
  // image names of this run only, so `down --rmi all` removes nothing else
  const berthImage = `berth:compose-${id}`;
  const s3Image = `berth-s3:compose-${id}`;
  const build = { network: 'host', args: { EXTRA_CA_CERTS: localCACerts() } };
  const host = { network_mode: 'host', image: berthImage, build };
  const override = {
    version: '3.9',
    services: {
      s3: { network_mode: 'host', image: s3Image, build: { network: 'host' }, environment: { S3_BIND: '127.0.0.1', S3_PORT: String(s3Port) } },
      'token-keys': { ...host, network_mode: 'none' },
      token: {
        ...host,
        environment: { REGISTRY_TOKENSERVER_ADDR: `127.0.0.1:${tokenPort}`, BERTH_HEALTHCHECK_URL: `http://127.0.0.1:${tokenPort}/healthz` },
      },
      berth: {
        ...host,
        environment: {
          REGISTRY_HTTP_ADDR: registry,
          REGISTRY_STORAGE_S3_REGIONENDPOINT: `http://127.0.0.1:${s3Port}`,
          REGISTRY_AUTH_TOKEN_REALM: `http://127.0.0.1:${tokenPort}/token`,
        },
      },
    },
  };
  const overrideFile = path.join(work, 'override.yaml');
  fs.writeFileSync(overrideFile, JSON.stringify(override, null, 2));
  const composeEnv = { ...env, BERTH_BASE_IMAGE: base, BERTH_S3_SECRET_KEY: s3Secret };
  const project = `berth-compose-${id}`;
  // compose merges the override over compose.yaml; its ports must go, as the host network
  // publishes nothing (docker refuses both), and v1 has no way to drop a list in an
  // override: so the merged result (paths made absolute) is what runs
  const merged = YAML.parse(
    (await mustRun('docker-compose', ['-f', path.join(REPO, 'deploy/compose.yaml'), '-f', overrideFile, 'config'], { env: composeEnv })).stdout,
  ) as { services: Record<string, { ports?: unknown }> };
  for (const svc of Object.values(merged.services)) delete svc.ports;
  const composeFile = path.join(work, 'compose.yaml');
  // as JSON: every string quoted, so compose's YAML 1.1 reads restart "no" as a string
  fs.writeFileSync(composeFile, JSON.stringify(merged, null, 2));
  type Opts = { input?: string; timeoutMs?: number };
  const compose = (args: string[], opts: Opts = {}) =>
    run('docker-compose', ['-p', project, '--project-directory', path.join(REPO, 'deploy'), '-f', composeFile, ...args], { env: composeEnv, ...opts });
  const must = async (args: string[], opts: Opts = {}) => {
    const r = await compose(args, opts);
    if (r.code !== 0) {
      const logs = await compose(['logs', '--no-color', '--tail', '30']).catch((e) => ({ stdout: String(e) }));
      throw new Error(`docker-compose ${args.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}\n--- logs\n${logs.stdout}`);
    }
    return r.stdout;
  };
  t.teardown(async () => {
    const r = await compose(['down', '-v', '--rmi', 'all', '--remove-orphans'], { timeoutMs: 120_000 });
    if (r.code !== 0) console.error(`docker-compose down: ${r.stderr}`);
  });
  t.comment((await mustRun('docker-compose', ['version', '--short'])).stdout.trim());

  start = Date.now();
  // builds both images, and waits for the store to be healthy (the bucket exists)
  // before it starts berth
  await must(['up', '-d', '--build'], { timeoutMs: 900_000 });
  t.comment(`docker-compose up -d --build: ${secs(start)}`);

  const containers = async () => {
    const ids = (await must(['ps', '-q'])).split('\n').filter(Boolean);
    return JSON.parse(await docker('inspect', ...ids)) as { Name: string; State: { Status: string; ExitCode: number; Health?: { Status: string } } }[];
  };
  start = Date.now();
  await waitFor('berth, token and s3 healthy', async () => (await containers()).filter((c) => c.State.Health?.Status === 'healthy').length === 3, 120_000)
    .catch(async (e) => {
      t.comment(JSON.stringify((await containers()).map((c) => [c.Name, c.State.Status, c.State.Health?.Status])));
      t.comment(await must(['logs', '--no-color', '--tail', '30']));
      throw e;
    });
  t.comment(`all healthy after ${secs(start)} more`);
  const states = (await containers()).map((c) => `${c.Name.replace(`/${project}_`, '')}: ${c.State.Health?.Status ?? `${c.State.Status} ${c.State.ExitCode}`}`).sort();
  t.same(states, ['berth_1: healthy', 's3_1: healthy', 'token-keys_1: exited 0', 'token_1: healthy'], 'every service up, the one-shot done');

  // anonymous: the registry sends clients to the token service, which grants them nothing
  const anon = await fetch(`http://${registry}/v2/`);
  t.equal(anon.status, 401, 'anonymous /v2/ is refused');
  t.match(anon.headers.get('www-authenticate'), `Bearer realm="http://127.0.0.1:${tokenPort}/token"`, 'realm is the token service');

  // compose v1 links a one-off container to the service's running ones, which docker
  // refuses on the host network: add the user while the token service is stopped
  const password = `pw-${crypto.randomUUID()}`;
  await must(['stop', 'token']);
  const added = await must(['run', '--rm', '-T', 'token', 'user', 'add', 'alice', '--config', '/etc/berth/token.yml'], { input: `${password}\n`, timeoutMs: 120_000 });
  t.comment(added.trim());
  await must(['start', 'token']);
  await waitFor('the token service back', async () => (await fetch(`http://127.0.0.1:${tokenPort}/healthz`).then((r) => r.status, () => 0)) === 200, 30_000);
  await mustRun('docker', ['login', registry, '-u', 'alice', '--password-stdin'], { env, input: password });
  t.pass('docker login with the user made by `run --rm -T token user add`');

  const ref = `${registry}/deploy/hello:1`;
  const { pushed: imageId, pulled } = await dockerPushPull(docker, work, ref);
  t.equal(pulled, imageId, 'docker pull gives back the pushed image');

  const manifestUrl = `http://${registry}/v2/deploy/hello/manifests/1`;
  t.equal((await fetch(manifestUrl)).status, 401, 'anonymous manifest GET is refused');
  const anonToken = await fetch(`http://127.0.0.1:${tokenPort}/token?service=berth&scope=repository:deploy/hello:pull`);
  t.equal(anonToken.status, 200, 'the token service answers anonymous callers');
  const { token } = (await anonToken.json()) as { token: string };
  t.equal((await fetch(manifestUrl, { headers: { authorization: `Bearer ${token}` } })).status, 401, 'an anonymous token pulls nothing');
  await docker('logout', registry);
  const denied = await run('docker', ['pull', ref], { env });
  t.not(denied.code, 0, 'docker pull without login fails');
  t.match(denied.stderr, /unauthorized|denied|authentication required/i, `refused for want of credentials: ${denied.stderr.trim()}`);

  // the bytes are in the store's bucket: berth's S3 driver reads the image config back
  // (its digest is the image id) under compose/registry.yml's rootdirectory
  const s3 = new S3Driver({
    bucket: 'berth',
    region: 'us-east-1',
    regionendpoint: `http://127.0.0.1:${s3Port}`,
    forcepathstyle: true,
    accesskey: 'berth:berth',
    secretkey: s3Secret,
    rootdirectory: '/registry',
  });
  t.teardown(() => s3.close());
  const hex = imageId.replace('sha256:', '');
  const reader = await s3.reader(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
  const chunks: Buffer[] = [];
  for await (const c of reader) chunks.push(c as Buffer);
  t.equal(crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), hex, 'the image config blob is in the bucket');
  t.same(await s3.list('/docker/registry/v2/repositories/deploy/hello/_manifests/tags'), ['1'], 'and the tag');
  t.comment(`total ${secs(began)} (teardown follows)`);
});
