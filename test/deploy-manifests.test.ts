// deploy/: every YAML file parses; the kustomize base and overlays render and every
// Kubernetes object validates against the Kubernetes API's schemas (kubernetes-models,
// generated from the official OpenAPI spec); the objects fit together (selectors,
// references, drain timing) and the documented blue/green and canary commands do what
// deploy/README.md says; the compose files pass `docker-compose config`.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import { parsePolicy } from '../auth/policy';
import { inCI } from './helpers/clients';
import { parseUsers } from '../auth/users';
import { fromObject, SCHEMA } from '../server/config';
import { id, parseDocs, render, type K8sObject, type Obj } from './fixtures/kustomize';

const REPO = path.resolve(__dirname, '../..');
const DEPLOY = path.join(REPO, 'deploy');
const K8S = path.join(DEPLOY, 'k8s');

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  });
}

t.test('every YAML file under deploy/ parses', async (t) => {
  const files = yamlFiles(DEPLOY);
  t.ok(files.length >= 20, `${files.length} files`);
  for (const f of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(f, 'utf8'));
    t.same(docs.flatMap((d) => d.errors.map((e) => e.message)), [], path.relative(REPO, f));
    t.ok(docs.some((d) => d.contents !== null), `${path.relative(REPO, f)} is not empty`);
  }
});

// kind → kubernetes-models module, e.g. apps/v1 Deployment → kubernetes-models/apps/v1/Deployment
function validate(o: K8sObject): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`kubernetes-models/${o.apiVersion}/${o.kind}`) as Record<string, new (d: unknown) => { validate(): void }>;
  new mod[o.kind](o).validate();
}

t.test('the schema check rejects what the API server would', async (t) => {
  const d = structuredClone(render(path.join(K8S, 'base')).find((o) => o.kind === 'Deployment')!);
  t.doesNotThrow(() => validate(d));
  t.throws(() => validate({ ...d, spec: { ...(d.spec as Obj), replicas: '3' } }), 'replicas must be an integer');
  t.throws(() => validate({ ...d, spec: { ...(d.spec as Obj), template: undefined } }), 'a pod template is required');
  const probe = structuredClone(d);
  get(probe, 'spec.template.spec.containers.0').readinessProbe.httpGet.port = { port: 5000 };
  t.throws(() => validate(probe), 'a port is a number or a name');
});

const kinds = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const one = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o;
};
const get = (o: unknown, p: string): any => p.split('.').reduce((v: any, k) => (v === undefined ? v : v[k]), o);
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
/** Deployments whose pods a Service's selector picks. */
const backends = (objs: K8sObject[], svc: K8sObject) =>
  kinds(objs, 'Deployment').filter((d) => selects(get(svc, 'spec.selector'), get(d, 'spec.template.metadata.labels'))).map((d) => d.metadata.name);
/** berth's config.yml as the ConfigMap carries it. */
const configOf = (objs: K8sObject[]) => YAML.parse(get(one(objs, 'ConfigMap', 'berth-config'), 'data')['config.yml']);
const seconds = (d: string) => {
  const m = /^(\d+)(s|m)$/.exec(d);
  if (!m) throw new Error(`duration ${d}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
};

/** Checks every rendered setup must pass: schemas, and that the objects fit together. */
function checkCommon(t: Test, objs: K8sObject[]): void {
  const ids = objs.map(id);
  t.equal(new Set(ids).size, ids.length, 'no object twice');
  for (const o of objs) {
    t.doesNotThrow(() => validate(o), `${id(o)} matches the ${o.apiVersion} ${o.kind} schema`);
  }
  const config = configOf(objs);
  t.equal(get(config, 'http.addr'), ':5000', 'the server listens on the container port');
  const drain = seconds(get(config, 'http.draintimeout'));
  for (const d of kinds(objs, 'Deployment')) {
    const pod = get(d, 'spec.template.spec');
    const c = pod.containers[0];
    const name = `${d.metadata.name}:`;
    t.ok(selects(get(d, 'spec.selector.matchLabels'), get(d, 'spec.template.metadata.labels')), `${name} selector picks its pods`);
    t.equal(get(c, 'readinessProbe.httpGet.path'), '/readyz', `${name} readiness on /readyz`);
    t.equal(get(c, 'livenessProbe.httpGet.path'), '/healthz', `${name} liveness on /healthz`);
    const preStop = get(c, 'lifecycle.preStop.sleep.seconds');
    t.ok(preStop > 0, `${name} preStop waits for the endpoints to update`);
    t.ok(pod.terminationGracePeriodSeconds >= preStop + drain, `${name} grace period ${pod.terminationGracePeriodSeconds}s covers preStop ${preStop}s + drain ${drain}s`);
    t.ok(pod.securityContext.runAsNonRoot && pod.securityContext.runAsUser > 0, `${name} runs as non-root`);
    t.equal(c.securityContext.readOnlyRootFilesystem, true, `${name} read-only root filesystem`);
    t.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${name} resource requests and limits`);
    // every ConfigMap, Secret and PVC the pod uses is part of the setup
    for (const v of pod.volumes ?? []) {
      if (v.configMap) t.ok(ids.includes(`ConfigMap/${v.configMap.name}`), `${name} volume ${v.name}: ConfigMap exists`);
      if (v.secret) t.ok(ids.includes(`Secret/${v.secret.secretName}`), `${name} volume ${v.name}: Secret exists`);
      if (v.persistentVolumeClaim) t.ok(ids.includes(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`), `${name} volume ${v.name}: PVC exists`);
    }
    for (const e of c.envFrom ?? []) t.ok(ids.includes(`Secret/${e.secretRef.name}`), `${name} envFrom ${e.secretRef.name} exists`);
    const mounts = c.volumeMounts.map((m: Obj) => m.name);
    t.same(mounts.filter((m: string) => !pod.volumes.some((v: Obj) => v.name === m)), [], `${name} every mount has a volume`);
  }
  for (const h of kinds(objs, 'HorizontalPodAutoscaler')) {
    t.ok(ids.includes(`Deployment/${get(h, 'spec.scaleTargetRef.name')}`), `${id(h)} scales an existing Deployment`);
  }
  for (const s of kinds(objs, 'Service')) t.ok(backends(objs, s).length > 0, `${id(s)} selects pods`);
  for (const i of kinds(objs, 'Ingress')) {
    const a = i.metadata.annotations as Record<string, string>;
    t.equal(a['nginx.ingress.kubernetes.io/proxy-body-size'], '0', `${id(i)} no body size limit`);
    t.equal(a['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off', `${id(i)} streams request bodies`);
    t.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 600, `${id(i)} long timeouts`);
    for (const r of get(i, 'spec.rules')) {
      for (const p of r.http.paths) t.ok(ids.includes(`Service/${p.backend.service.name}`), `${id(i)} backend Service exists`);
    }
  }
}

const setups = ['base', 'overlays/filesystem', 'overlays/blue-green', 'overlays/canary'];
const rendered = new Map<string, K8sObject[]>();
for (const s of setups) rendered.set(s, render(path.join(K8S, s)));

t.test('base: 3 replicas on S3, rolling without going below 3', async (t) => {
  const objs = rendered.get('base')!;
  checkCommon(t, objs);
  t.same(objs.map(id).sort(), [
    'ConfigMap/berth-config', 'Deployment/berth', 'HorizontalPodAutoscaler/berth', 'Ingress/berth',
    'PodDisruptionBudget/berth', 'Secret/berth-s3', 'Secret/berth-token', 'Service/berth',
  ]);
  const d = one(objs, 'Deployment', 'berth');
  t.equal(get(d, 'spec.replicas'), 3);
  t.equal(get(d, 'spec.strategy.rollingUpdate.maxUnavailable'), 0);
  const config = configOf(objs);
  t.ok(config.storage.s3?.bucket, 'S3 storage');
  t.ok(get(d, 'spec.template.spec.containers.0.envFrom.0.secretRef.name') === 'berth-s3', 'S3 keys from the Secret');
  t.equal(get(one(objs, 'HorizontalPodAutoscaler', 'berth'), 'spec.minReplicas'), 3);
});

t.test('filesystem overlay: one replica on a PVC, no S3', async (t) => {
  const objs = rendered.get('overlays/filesystem')!;
  checkCommon(t, objs);
  const d = one(objs, 'Deployment', 'berth');
  t.equal(get(d, 'spec.replicas'), 1);
  t.same(get(d, 'spec.strategy'), { type: 'Recreate' }, 'old pod releases the volume first');
  const c = get(d, 'spec.template.spec.containers.0');
  t.ok(c.volumeMounts.some((m: Obj) => m.mountPath === '/var/lib/registry' && m.name === 'data'), 'store on the volume');
  t.equal(c.envFrom, undefined, 'no S3 keys');
  const config = configOf(objs);
  t.same(config.storage.filesystem, { rootdirectory: '/var/lib/registry' });
  t.equal(config.storage.s3, undefined);
  t.same(kinds(objs, 'HorizontalPodAutoscaler'), []);
  t.notOk(objs.map(id).includes('Secret/berth-s3'));
});

const README = fs.readFileSync(path.join(DEPLOY, 'README.md'), 'utf8');
/** The merge patch of a documented `kubectl patch <kind> <name> -p '<json>'` command. */
function documentedPatch(kind: string, name: string): Obj[] {
  const re = new RegExp(`kubectl patch ${kind} ${name} -p '([^']+)'`, 'g');
  return [...README.matchAll(re)].map((m) => JSON.parse(m[1]));
}

t.test('blue/green overlay: the documented command moves all traffic', async (t) => {
  const objs = rendered.get('overlays/blue-green')!;
  checkCommon(t, objs);
  t.same(kinds(objs, 'Deployment').map((d) => d.metadata.name).sort(), ['berth-blue', 'berth-green']);
  t.same(kinds(objs, 'HorizontalPodAutoscaler').map((h) => get(h, 'spec.scaleTargetRef.name')).sort(), ['berth-blue', 'berth-green']);
  const svc = one(objs, 'Service', 'berth');
  t.same(backends(objs, svc), ['berth-blue'], 'blue is live after install');
  const patches = documentedPatch('service', 'berth');
  t.ok(patches.length >= 2, 'README documents switching and switching back');
  const toColor = (p: Obj) => get(p, 'spec.selector.track');
  for (const p of patches) {
    // a JSON merge patch of the selector, as kubectl patch applies it
    const switched = structuredClone(svc);
    Object.assign(switched.spec as Obj, { selector: { ...get(svc, 'spec.selector'), ...get(p, 'spec.selector') } });
    t.same(backends(objs, switched), [`berth-${toColor(p)}`], `patch to ${toColor(p)} selects only ${toColor(p)}`);
  }
  const pdb = one(objs, 'PodDisruptionBudget', 'berth');
  t.same(kinds(objs, 'Deployment').filter((d) => selects(get(pdb, 'spec.selector.matchLabels'), get(d, 'spec.template.metadata.labels'))).length, 2, 'the PDB covers both colors');
});

t.test('canary overlay: one replica of the next version behind an ingress weight, next to the base', async (t) => {
  const added = rendered.get('overlays/canary')!;
  t.same(added.map(id).sort(), ['Deployment/berth-canary', 'Ingress/berth-canary', 'Service/berth-canary'], 'only the canary objects');
  // it is applied next to a running base
  const objs = [...rendered.get('base')!, ...added];
  checkCommon(t, objs);
  const stable = one(objs, 'Deployment', 'berth');
  const canary = one(objs, 'Deployment', 'berth-canary');
  t.equal(get(canary, 'spec.replicas'), 1);
  t.not(get(canary, 'spec.template.spec.containers.0.image'), get(stable, 'spec.template.spec.containers.0.image'), 'canary runs another version');
  t.same(backends(objs, one(objs, 'Service', 'berth')), ['berth'], 'stable Service: stable pods only');
  t.same(backends(objs, one(objs, 'Service', 'berth-canary')), ['berth-canary'], 'canary Service: canary pods only');
  const main = one(objs, 'Ingress', 'berth');
  const ing = one(objs, 'Ingress', 'berth-canary');
  const a = ing.metadata.annotations as Record<string, string>;
  t.equal(a['nginx.ingress.kubernetes.io/canary'], 'true');
  const w = Number(a['nginx.ingress.kubernetes.io/canary-weight']);
  t.ok(w > 0 && w < 50, `small weight ${w}`);
  t.same(get(ing, 'spec.rules.0.host'), get(main, 'spec.rules.0.host'), 'same host as the main Ingress');
  t.same(get(ing, 'spec.rules.0.http.paths.0.path'), get(main, 'spec.rules.0.http.paths.0.path'), 'same path');
  t.same(kinds(objs, 'HorizontalPodAutoscaler').map((h) => get(h, 'spec.scaleTargetRef.name')), ['berth'], 'only stable autoscales');
  t.match(README, /kubectl delete -k deploy\/k8s\/overlays\/canary/, 'README documents the roll back');
});

// berth's own loader checks every config shipped here (unknown keys are errors). A file
// using a section this build's schema does not have yet (auth, tokenserver, storage.s3
// arrive with their branches) is reported as skipped, naming the section.
t.test('every berth config under deploy/ loads', async (t) => {
  const configs: [string, Obj, NodeJS.ProcessEnv][] = [
    ['deploy/config.yml', YAML.parse(fs.readFileSync(path.join(DEPLOY, 'config.yml'), 'utf8')), {}],
    ['deploy/compose/registry.yml', YAML.parse(fs.readFileSync(path.join(DEPLOY, 'compose/registry.yml'), 'utf8')), { REGISTRY_STORAGE_S3_ACCESSKEY: 'a', REGISTRY_STORAGE_S3_SECRETKEY: 'b' }],
    ['deploy/compose/token.yml', YAML.parse(fs.readFileSync(path.join(DEPLOY, 'compose/token.yml'), 'utf8')), {}],
  ];
  for (const s of ['base', 'overlays/filesystem']) {
    const objs = rendered.get(s)!;
    // the environment the Deployment gives the container
    const env: NodeJS.ProcessEnv = {};
    for (const e of get(one(objs, 'Deployment', 'berth'), 'spec.template.spec.containers.0.envFrom') ?? []) {
      Object.assign(env, get(one(objs, 'Secret', e.secretRef.name), 'stringData'));
    }
    configs.push([`k8s/${s} ConfigMap`, configOf(objs), env]);
  }
  const sections = (o: Obj) => [...Object.keys(o).filter((k) => !(k in SCHEMA)), ...(get(o, 'storage.s3') && !('s3' in (SCHEMA.storage as { fields: Obj }).fields) ? ['storage.s3'] : [])];
  for (const [name, raw, env] of configs) {
    const missing = sections(raw);
    const skip = missing.length ? `this build has no ${missing.join(', ')} section yet` : false;
    t.test(name, { skip }, async (t) => {
      t.same(fromObject(raw, env).warnings, [], 'loads without warnings');
    });
  }
  t.equal(fromObject(configs[0][1], {}).config.http.addr, ':5000', 'the image listens on :5000');
});

t.test('the shipped access policies and users files parse', async (t) => {
  const base = rendered.get('base')!;
  const policies: [string, string][] = [
    ['deploy/compose/policy.yml', fs.readFileSync(path.join(DEPLOY, 'compose/policy.yml'), 'utf8')],
    ['k8s ConfigMap policy.yml', get(one(base, 'ConfigMap', 'berth-config'), 'data')['policy.yml']],
  ];
  for (const [name, text] of policies) {
    const p = parsePolicy(text);
    t.same(p.admins, ['admin'], `${name}: admins`);
    t.ok(p.default.get('authenticated')?.has('pull'), `${name}: signed-in users pull`);
  }
  t.equal(parseUsers(get(one(base, 'Secret', 'berth-token'), 'stringData')['users.yml']).size, 0, 'k8s users.yml placeholder parses');
});

// kubectl ships kustomize; where it is installed, our renderer must agree with it.
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
t.test('the renderer agrees with kubectl kustomize', { skip: kubectl.status === 0 ? false : 'kubectl not installed' }, async (t) => {
  for (const s of setups) {
    const out = execFileSync('kubectl', ['kustomize', path.join(K8S, s)], { encoding: 'utf8' });
    const theirs = (parseDocs(out, s) as K8sObject[]).sort((a, b) => id(a).localeCompare(id(b)));
    const ours = [...rendered.get(s)!].sort((a, b) => id(a).localeCompare(id(b)));
    t.same(ours, theirs, s);
  }
});

// docker-compose (Debian package docker-compose) checks the files against the compose schema.
// Under CI=true it must be there (apt-get install docker-compose).
const compose = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
t.test('compose files pass docker-compose config and fit together', { skip: compose.status === 0 || inCI() ? false : 'docker-compose not installed' }, async (t) => {
  if (compose.status !== 0) return t.fail('docker-compose not installed (apt-get install docker-compose); CI=true requires it');
  const checked = (file: string) => {
    const r = spawnSync('docker-compose', ['-f', file, 'config'], { cwd: DEPLOY, encoding: 'utf8' });
    t.equal(r.status, 0, `docker-compose -f ${file} config ${r.stderr}`);
    return YAML.parse(r.stdout);
  };
  const full = checked('compose.yaml');
  t.same(Object.keys(full.services).sort(), ['berth', 's3', 'token', 'token-keys']);
  // the registry stores into the bucket the S3 service creates, with its credentials
  const store = full.services.s3.environment;
  t.equal(full.services.berth.environment.REGISTRY_STORAGE_S3_ACCESSKEY, store.S3_ACCESS_KEY, 'same S3 access key');
  t.equal(full.services.berth.environment.REGISTRY_STORAGE_S3_SECRETKEY, store.S3_SECRET_KEY, 'same S3 secret');
  // the registry trusts the key the token service signs with, and sends clients to it
  const registry = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'compose/registry.yml'), 'utf8'));
  const token = YAML.parse(fs.readFileSync(path.join(DEPLOY, 'compose/token.yml'), 'utf8'));
  t.equal(registry.storage.s3.bucket, store.S3_BUCKET, 'the bucket the store creates');
  t.equal(registry.storage.s3.regionendpoint, 'http://s3:9000', 'the store on its default port');
  t.equal(registry.auth.token.issuer, token.tokenserver.issuer, 'same issuer');
  t.ok(token.tokenserver.services.includes(registry.auth.token.service), 'token service serves this registry');
  t.match(registry.auth.token.realm, new RegExp(`:${token.tokenserver.addr.split(':').pop()}/token$`), 'realm points at the token service');
  t.ok(full.services.berth.ports.some((p: { target: number }) => Number(p.target) === 5000) || full.services.berth.ports.some((p: string) => String(p).endsWith(':5000')), 'registry published on 5000');
  // the image's config drains for http.draintimeout; compose must wait longer before SIGKILL
  const drain = seconds(YAML.parse(fs.readFileSync(path.join(DEPLOY, 'config.yml'), 'utf8')).http.draintimeout);
  const fsOnly = checked('compose.filesystem.yaml');
  for (const [where, svc] of [['compose.yaml berth', full.services.berth], ['compose.yaml token', full.services.token], ['compose.filesystem.yaml berth', fsOnly.services.berth]]) {
    t.ok(seconds(svc.stop_grace_period) > drain, `${where}: stop_grace_period ${svc.stop_grace_period} > drain ${drain}s`);
  }
  t.same(Object.keys(fsOnly.services), ['berth']);
  t.match(JSON.stringify(fsOnly.services.berth.volumes), /\/var\/lib\/registry/, 'store on a volume');
});
