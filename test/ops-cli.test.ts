// `berth config check FILE` and `berth --version`, run as the real CLI.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { CLI, tempDir } from './helpers/berth';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function berth(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...clean, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code: unknown }).code) : 0, stdout, stderr });
    });
  });
}

t.test('config check prints the effective settings with secrets masked', async (t) => {
  const dir = tempDir('berth-cli-');
  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(
    file,
    `version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
notifications:
  endpoints:
    - name: audit
      url: https://hooks.example.com/registry
      headers:
        Authorization: [Bearer very-secret-token]
        X-Team: [platform]
      backoff: 2s
`,
  );
  const r = await berth(['config', 'check', file], { REGISTRY_HTTP_ADDR: '127.0.0.1:6000' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^# ${file}: valid\n`));
  t.notMatch(r.stdout, /very-secret-token/, 'the secret is not printed');
  const eff = YAML.parse(r.stdout);
  t.equal(eff.http.addr, '127.0.0.1:6000', 'environment overrides are applied');
  t.same(eff.notifications.endpoints[0].headers, { Authorization: ['********'], 'X-Team': ['********'] }, 'header values are masked');
  t.match(eff.notifications.endpoints[0], { name: 'audit', url: 'https://hooks.example.com/registry', backoff: '2s', timeout: '1s', threshold: 3, queuesize: 1000, disabled: false });
  t.match(eff.http.debug.prometheus, { enabled: true, path: '/metrics' });
});

t.test('config check rejects a broken config with a clear message and exit 2', async (t) => {
  const dir = tempDir('berth-cli-');
  const cases: Array<[string, RegExp]> = [
    ['notifications:\n  endpoints:\n    - name: x\n', /notifications\.endpoints\[0\]\.url must be an http\(s\) URL/],
    ['notifications:\n  endpoints:\n    - name: x\n      url: ftp://h/\n', /must be an http\(s\) URL/],
    ['notifications:\n  endpoints:\n    - url: http://h/\n', /notifications\.endpoints\[0\]\.name is required/],
    ['notifications:\n  endpoints:\n    - {name: a, url: "http://h/", timeout: soon}\n', /notifications\.endpoints\[0\]\.timeout: "soon" is not a duration/],
    ['http:\n  tls:\n    minimumtls: tls1.0\n', /http\.tls\.minimumtls must be one of tls1\.2, tls1\.3/],
    ['http:\n  adr: ":5000"\n', /unknown configuration key "http\.adr"/],
  ];
  for (const [i, [yaml, message]] of cases.entries()) {
    const file = path.join(dir, `bad-${i}.yml`);
    fs.writeFileSync(file, yaml);
    const r = await berth(['config', 'check', file]);
    t.equal(r.code, 2, `exit 2 for ${JSON.stringify(yaml)}`);
    t.match(r.stderr, message);
    t.equal(r.stdout, '');
  }
  const missing = await berth(['config', 'check', path.join(dir, 'nope.yml')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /cannot read config file/);
});

t.test('--version prints the package version', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8'));
  const r = await berth(['--version']);
  t.equal(r.code, 0);
  t.equal(r.stdout, `berth ${pkg.version}\n`);
  const unknown = await berth(['frobnicate']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /usage: berth/);
});
