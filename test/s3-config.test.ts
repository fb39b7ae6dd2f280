// storage.s3: distribution's keys, REGISTRY_STORAGE_S3_* overrides, clear errors.
import t from 'tap';
import path from 'node:path';
import { ConfigError, fromObject, loadConfig, maskSecrets } from '../server/config';
import { createDriver } from '../storage/factory';

const MiB = 1024 * 1024;

t.test('a distribution storage.s3 section loads with defaults', async (t) => {
  const { config, warnings } = fromObject({
    storage: {
      s3: {
        accesskey: 'AKIA',
        secretkey: 'sekrit',
        region: 'eu-west-1',
        regionendpoint: 'http://127.0.0.1:9000',
        forcepathstyle: true,
        bucket: 'registry',
        rootdirectory: '/prod',
        v4auth: true,
        chunksize: 16 * MiB,
      },
    },
  }, {});
  t.equal(config.storage.filesystem, undefined, 'no default filesystem driver next to s3');
  t.match(config.storage.s3, {
    bucket: 'registry',
    region: 'eu-west-1',
    forcepathstyle: true,
    chunksize: 16 * MiB,
    multipartcopythresholdsize: 32 * MiB,
    multipartcopychunksize: 32 * MiB,
    multipartcopymaxconcurrency: 100,
    storageclass: 'STANDARD',
    secure: true,
    maxuploadparts: 10_000,
    operationtimeout: 60_000,
  });
  t.match(warnings.join('\n'), /storage\.s3\.v4auth/, 'v4auth accepted with a notice');
  t.match(maskSecrets(config), { storage: { s3: { secretkey: '********', accesskey: 'AKIA' } } }, 'secret masked');
  const driver = createDriver(config.storage);
  t.equal(driver.name, 's3', 'the factory builds the S3 driver');
  await driver.close();
});

t.test('REGISTRY_STORAGE_S3_* overrides', async (t) => {
  const { config } = fromObject({}, {
    REGISTRY_STORAGE_S3_BUCKET: 'b',
    REGISTRY_STORAGE_S3_REGION: 'us-east-1',
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
    REGISTRY_STORAGE_S3_MULTIPARTCOPYTHRESHOLDSIZE: String(6 * MiB),
    REGISTRY_STORAGE_S3_OPERATIONTIMEOUT: '3s',
  });
  t.match(config.storage.s3, { bucket: 'b', forcepathstyle: true, multipartcopythresholdsize: 6 * MiB, operationtimeout: 3000 });
  t.equal(config.storage.filesystem, undefined);
});

t.test('clear errors', async (t) => {
  const bad = (raw: Record<string, unknown>, env: Record<string, string>, re: RegExp, what: string) =>
    t.throws(() => fromObject(raw, env), re, what) && t.throws(() => fromObject(raw, env), ConfigError);
  bad({ storage: { filesystem: { rootdirectory: '/x' }, s3: { bucket: 'b', region: 'r' } } }, {}, /only one storage driver.*filesystem and s3/, 'two drivers in the file');
  bad({ storage: { s3: { bucket: 'b', region: 'r' } } }, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/x' }, /only one storage driver/, 'one in the file, one from the environment');
  bad({ storage: { s3: { region: 'r' } } }, {}, /storage\.s3\.bucket is required/, 'bucket');
  bad({ storage: { s3: { bucket: 'b', region: 'r', chunksize: MiB } } }, {}, /chunksize must be at least 5242880/, 'chunksize below S3 minimum');
  bad({ storage: { s3: { bucket: 'b', region: 'r', accesskey: 'a' } } }, {}, /both accesskey and secretkey/, 'half the credentials');
  bad({ storage: { s3: { bucket: 'b', region: 'r', bogus: 1 } } }, {}, /unknown configuration key "storage\.s3\.bogus"/, 'unknown key');
});

t.test('deploy/examples/s3.yml is valid', async (t) => {
  const { config } = loadConfig(path.resolve(__dirname, '../../deploy/examples/s3.yml'), {});
  t.match(config.storage.s3, { bucket: 'registry', forcepathstyle: true, rootdirectory: '/berth', operationtimeout: 60_000 });
  t.equal(config.storage.filesystem, undefined);
});
