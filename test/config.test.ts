// Config: distribution's config.yml format, REGISTRY_* overrides, clear errors.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ConfigError, formatDuration, fromObject, loadConfig, maskSecrets, parseAddr, parseDuration } from '../server/config';
import { tempDir } from './helpers/berth';

t.test('defaults: filesystem store in ./data on :5000', async (t) => {
  const { config } = fromObject({}, {});
  t.equal(config.http.addr, ':5000');
  t.same(config.storage.filesystem, { rootdirectory: './data' });
  t.equal(config.storage.delete.enabled, false);
  t.equal(config.storage.maintenance.uploadpurging.enabled, true);
  t.equal(config.storage.maintenance.uploadpurging.age, 168 * 3600_000);
  t.equal(config.log.level, 'info');
});

t.test('a distribution config.yml loads with the same meaning', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(
    file,
    [
      'version: 0.1',
      'log:',
      '  level: debug',
      '  fields:',
      '    service: registry',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  filesystem:',
      '    rootdirectory: /var/lib/registry',
      '  delete:',
      '    enabled: true',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: true',
      '      age: 72h',
      '      interval: 1h30m',
      '      dryrun: false',
      'http:',
      '  addr: 127.0.0.1:5001',
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      'health:',
      '  storagedriver:',
      '    enabled: true',
      '    interval: 10s',
      '    threshold: 3',
    ].join('\n'),
  );
  const { config, warnings } = loadConfig(file, {});
  t.equal(config.log.level, 'debug');
  t.equal(config.storage.filesystem?.rootdirectory, '/var/lib/registry');
  t.equal(config.storage.delete.enabled, true);
  t.equal(config.storage.maintenance.uploadpurging.age, 72 * 3600_000);
  t.equal(config.storage.maintenance.uploadpurging.interval, 90 * 60_000);
  t.same(config.http.headers, { 'X-Content-Type-Options': ['nosniff'] });
  t.match(warnings.join('\n'), /storage\.cache\.blobdescriptor/);
});

t.test('environment overrides in distribution style', async (t) => {
  const { config } = fromObject(
    { storage: { filesystem: { rootdirectory: '/a' } } },
    {
      REGISTRY_HTTP_ADDR: '127.0.0.1:5099',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/tmp/x',
      REGISTRY_STORAGE_DELETE_ENABLED: 'true',
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2h',
      REGISTRY_LOG_LEVEL: 'warn',
      REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS: 'DENY',
      PATH: '/usr/bin',
    },
  );
  t.equal(config.http.addr, '127.0.0.1:5099');
  t.equal(config.storage.filesystem?.rootdirectory, '/tmp/x');
  t.equal(config.storage.delete.enabled, true);
  t.equal(config.storage.maintenance.uploadpurging.age, 7200_000);
  t.equal(config.log.level, 'warn');
  t.same(config.http.headers, { x_frame_options: ['DENY'] });
});

t.test('bad configs are rejected with clear messages', async (t) => {
  t.throws(() => fromObject({ storage: { filesystem: { rootdirectory: '/a', bogus: 1 } } }, {}), {
    message: /unknown configuration key "storage\.filesystem\.bogus"/,
  });
  t.throws(() => fromObject({ htp: {} }, {}), { message: /unknown configuration key "htp"/ });
  t.throws(() => fromObject({ log: { level: 'loud' } }, {}), { message: /log\.level must be one of/ });
  t.throws(() => fromObject({ storage: { delete: { enabled: 'maybe' } } }, {}), { message: /storage\.delete\.enabled must be true or false/ });
  t.throws(() => fromObject({}, { REGISTRY_NOPE_THING: 'x' }), { message: /REGISTRY_NOPE_THING does not name a configuration key/ });
  t.throws(() => fromObject({ storage: { maintenance: { uploadpurging: { age: 'soon' } } } }, {}), { message: /not a duration/ });
  t.throws(() => fromObject({ storage: { filesystem: {} } }, {}), { message: /rootdirectory is required/ });
  t.throws(() => fromObject({}, { REGISTRY_BERTH_BLOBCACHE_ROOTDIRECTORY: '/var/cache/berth' }), { message: /berth\.blobcache keeps S3 blobs on local disk/ });
  t.throws(() => loadConfig('/nonexistent/berth.yml', {}), ConfigError);
});

t.test('durations and addresses', async (t) => {
  t.equal(parseDuration('1h30m', 'x'), 5_400_000);
  t.equal(parseDuration('250ms', 'x'), 250);
  t.equal(parseDuration('0', 'x'), 0);
  t.equal(parseDuration(1_000_000_000, 'x'), 1000); // Go nanoseconds
  t.same(parseAddr(':5000'), { host: undefined, port: 5000 });
  t.same(parseAddr('127.0.0.1:5001'), { host: '127.0.0.1', port: 5001 });
  t.same(parseAddr('[::1]:5002'), { host: '::1', port: 5002 });
  t.throws(() => parseAddr('5000'), ConfigError);
  t.throws(() => parseAddr(':70000'), ConfigError);
  for (const [ms, text] of [[0, '0s'], [250, '250ms'], [30_000, '30s'], [5_400_000, '1h30m'], [604_800_000, '168h'], [1.5, '1ms500us'], [90_061_001, '25h1m1s1ms']] as const) {
    t.equal(formatDuration(ms), text, `${ms} ms prints as ${text}`);
    t.equal(parseDuration(text, 'x'), ms, `${text} reads back as ${ms} ms`);
  }
});

t.test('every problem is reported, not only the first', async (t) => {
  let e: ConfigError | undefined;
  try {
    fromObject({ htp: {}, http: { addr: '5000', adr: 1 }, log: { level: 'loud' }, storage: { delete: { enabled: 'maybe' } } }, { REGISTRY_NOPE: 'x' });
  } catch (err) {
    e = err as ConfigError;
  }
  t.ok(e instanceof ConfigError);
  t.equal(e?.errors.length, 6, String(e?.message));
  t.match(e?.message, /unknown configuration key "htp"[^]*http\.addr: "5000"[^]*"http\.adr"[^]*log\.level[^]*storage\.delete\.enabled[^]*REGISTRY_NOPE/);
});

t.test('secrets are masked', async (t) => {
  const schema = { s: { kind: 'object' as const, fields: { password: { kind: 'string' as const, secret: true }, user: { kind: 'string' as const } } } };
  t.same(maskSecrets({ s: { password: 'hunter2', user: 'bob' } }, schema), { s: { password: '********', user: 'bob' } });
});
