// `berth config check` refuses what `serve` refuses, lists every error at
// once, checks the files a config names, prints settings that read back the
// same, and takes a distribution config.yml with the keys berth does not use.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { writeChain, writeKey } from './helpers/auth';
import { CLI, tempDir } from './helpers/berth';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function berth(args: string[], env: Record<string, string> = {}, timeout = 30_000): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...clean, ...env }, timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code: unknown }).code) : 0, stdout, stderr });
    });
  });
}

const dir = tempDir('berth-check-');
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};
const store = (name: string) => `storage:\n  filesystem:\n    rootdirectory: ${path.join(dir, name)}\n`;

t.test('every error at once, including what only serve used to refuse', async (t) => {
  const file = write(
    'many.yml',
    `http:
  addr: "5197"
  adr: ":5000"
  debug:
    addr: localhost
log:
  levle: debug
storage:
  filesystem:
    rootdirectory: ${path.join(dir, 'many')}
    bogus: 1
  maintenance:
    uploadpurging:
      age: soon
`,
  );
  const r = await berth(['config', 'check', file]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  for (const m of [
    /http\.addr: "5197" must be HOST:PORT or :PORT/,
    /unknown configuration key "http\.adr"/,
    /http\.debug\.addr: "localhost" must be HOST:PORT/,
    /unknown configuration key "log\.levle"/,
    /unknown configuration key "storage\.filesystem\.bogus"/,
    /storage\.maintenance\.uploadpurging\.age: "soon" is not a duration/,
  ]) {
    t.match(r.stderr, m);
  }
  t.match(r.stderr, /6 errors:/);

  // serve refuses the same, before it touches anything.
  const serve = await berth(['serve', file]);
  t.equal(serve.code, 2, 'serve exits 2 on the same config');
  t.match(serve.stderr, /6 errors:[^]*http\.addr: "5197"/);
  t.notOk(fs.existsSync(path.join(dir, 'many')), 'and creates no store');
});

t.test('the files a config names must exist and parse; the policy is linted', async (t) => {
  const tlsDir = tempDir('berth-check-tls-');
  const chain = writeChain(tlsDir, 'srv');
  const other = writeKey(tlsDir, 'other');
  const good = writeKey(dir, 'token', 'ec');
  const policy = write(
    'policy.yml',
    `admins: [root]
rulez: []
rules:
  - repository: "team/***"
    grant: {dev: [pull]}
  - repository: "{usr}/**"
    grant: {authenticated: [pull, fly]}
  - repository: "/lead"
    color: red
`,
  );
  const users = write('users.yml', 'users:\n  alice: {password: 1, groups: x}\n');
  const file = write(
    'files.yml',
    `${store('files')}http:
  tls:
    certificate: ${chain.leafCert}
    key: ${other.keyPath}
    clientcas: [${path.join(dir, 'no-ca.pem')}]
auth:
  token:
    realm: http://localhost:5000/token
    service: berth
    issuer: berth-token
    rootcertbundle: ${path.join(dir, 'no-bundle.pem')}
tokenserver:
  issuer: berth-token
  key: ${policy}
  users: ${users}
  policy: ${policy}
  services: [berth]
`,
  );
  const r = await berth(['config', 'check', file]);
  t.equal(r.code, 2);
  for (const m of [
    /http\.tls: .* are not a usable certificate and key/,
    /http\.tls\.clientcas\[0\]: cannot read .*no-ca\.pem/,
    /auth\.token\.rootcertbundle: cannot read .*no-bundle\.pem/,
    /tokenserver\.key: .*policy\.yml is not a PEM private key/,
    /tokenserver\.users: .*users\.yml: user "alice"/,
    /tokenserver\.policy: .*unknown key "rulez"/,
    /tokenserver\.policy: .*rules\[0\]: invalid pattern "team\/\*\*\*"/,
    /tokenserver\.policy: .*rules\[1\]: invalid pattern "\{usr\}\/\*\*": braces may only hold \{user\}/,
    /tokenserver\.policy: .*rules\[1\]\.grant\.authenticated: unknown action "fly"/,
    /tokenserver\.policy: .*rules\[2\]: unknown key "color"/,
    /tokenserver\.policy: .*rules\[2\]: invalid pattern "\/lead"/,
  ]) {
    t.match(r.stderr, m);
  }

  // Put right, it passes; and a missing htpasswd file is an error too.
  const fixed = write(
    'fixed.yml',
    `${store('fixed')}http:
  addr: 127.0.0.1:5197
  tls:
    certificate: ${chain.leafCert}
    key: ${chain.leafKey.keyPath}
auth:
  token:
    realm: http://127.0.0.1:5197/token
    service: berth
    issuer: berth-token
tokenserver:
  issuer: berth-token
  key: ${good.keyPath}
  users: ${path.join(dir, 'not-yet.yml')}
  policy: ${write('ok-policy.yml', 'rules:\n  - repository: "{user}/**"\n    grant: {authenticated: ["*"]}\n')}
  services: [berth]
`,
  );
  const ok = await berth(['config', 'check', fixed]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stderr, /tokenserver\.users: .*not-yet\.yml does not exist yet/, 'a users file not made yet is a warning');
  const htpasswd = await berth(['config', 'check', write('ht.yml', `${store('ht')}auth:\n  htpasswd:\n    realm: r\n    path: ${path.join(dir, 'htpasswd')}\n`)]);
  t.equal(htpasswd.code, 2);
  t.match(htpasswd.stderr, /auth\.htpasswd\.path: cannot read .*htpasswd/);
});

t.test('the printed settings read back the same: durations as 30s, not 30000', async (t) => {
  const file = write('durations.yml', `${store('durations')}http:\n  draintimeout: 45s\nberth:\n  linkcachettl: 250ms\n  gc:\n    interval: 1h30m\n`);
  const first = await berth(['config', 'check', file]);
  t.equal(first.code, 0, first.stderr);
  const eff = YAML.parse(first.stdout);
  t.equal(eff.http.draintimeout, '45s');
  t.equal(eff.berth.linkcachettl, '250ms');
  t.equal(eff.berth.gc.interval, '1h30m');
  t.equal(eff.storage.maintenance.uploadpurging.age, '168h');
  const again = await berth(['config', 'check', write('again.yml', first.stdout)]);
  t.equal(again.code, 0, again.stderr);
  t.equal(again.stdout.split('\n').slice(1).join('\n'), first.stdout.split('\n').slice(1).join('\n'), 'checking the output gives the same settings');
});

t.test("a distribution config.yml with keys berth does not use: one warning each, saying what berth does", async (t) => {
  const file = write(
    'distribution.yml',
    `version: 0.1
log:
  fields:
    service: registry
storage:
  inmemory:
  cache:
    blobdescriptor: redis
  filesystem:
    rootdirectory: ${path.join(dir, 'dist')}
http:
  addr: :5000
  prefix: /registry/
  secret: asecretforlocaldevelopment
redis:
  addr: localhost:6379
  db: 0
proxy:
  remoteurl: https://registry-1.docker.io
  username: u
  password: p
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/
middleware:
  registry:
    - name: redirect
      options:
        baseurl: https://example.com/
reporting:
  bugsnag:
    apikey: bugsnagapikey
compatibility:
  schema1:
    enabled: true
notifications:
  events:
    includereferences: true
`,
  );
  const r = await berth(['config', 'check', file]);
  t.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('berth: warning: '));
  for (const [key, does] of [
    ['redis', /process memory/],
    ['middleware', /middleware/],
    ['reporting', /logs and Prometheus metrics/],
    ['compatibility', /schema 1/],
    ['storage.inmemory', /filesystem/],
  ] as const) {
    const mine = warnings.filter((w) => w.startsWith(`berth: warning: ${key} is accepted`));
    t.equal(mine.length, 1, `one warning for ${key}`);
    t.match(mine[0], does, `${key}: says what berth does instead`);
  }
  const eff = YAML.parse(r.stdout);
  t.equal(eff.http.prefix, '/registry/', 'http.prefix is used');
  t.notOk(warnings.some((w) => /warning: proxy\b/.test(w)), 'proxy is used (the pull-through cache), without a warning');
  t.match(eff.proxy, { remoteurl: 'https://registry-1.docker.io', username: 'u', password: '********' });
  t.same(eff.validation.manifests.urls.allow, ['^https?://([^/]+\\.)*example\\.com/'], 'validation.manifests.urls is used');
  t.equal(eff.notifications.events.includereferences, true);

  const bad = await berth(['config', 'check', write('bad-re.yml', `${store('re')}validation:\n  manifests:\n    urls:\n      allow: ["(unclosed"]\n`)]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /validation\.manifests\.urls\.allow\[0\] is not a regular expression/);
  const env = await berth(['config', 'check', write('env.yml', store('env'))], { REGISTRY_REDIS_ADDR: 'localhost:6379' });
  t.equal(env.code, 0, 'a REGISTRY_ variable under an accepted section is accepted too');
  t.match(env.stderr, /warning: REGISTRY_REDIS_ADDR \(redis\) is accepted/);
});
