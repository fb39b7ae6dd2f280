// The whole conformance suite against berth on S3 (Swift s3api): strictly
// with redirects disabled (berth streams from S3), and with blob GETs answered
// by 307 to presigned URLs (the default), where the store's own response
// lacks the registry's SHOULD headers (Docker-Content-Digest), so MUSTs only.
import path from 'node:path';
import t from 'tap';
import { runConformance } from '../conformance/index';
import { startBerth } from './helpers/berth';
import { assertEach } from './helpers/conformance';
import { startS3, type S3Server } from './helpers/s3';

let s3: S3Server;
t.before(async () => {
  s3 = await startS3();
});
t.teardown(async () => {
  await s3?.stop();
});

const berthOnS3 = async (root: string, env: Record<string, string> = {}, config?: string) =>
  startBerth({
    deleteEnabled: true,
    config,
    env: s3.env({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: root, REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * 1024 * 1024), ...env }),
  });

t.test('berth on S3 with storage.redirect.disable passes the whole suite, strictly (deploy/examples/s3.yml)', async (tt) => {
  // The example config, pointed at the test store by the environment.
  const example = path.resolve(__dirname, '../../deploy/examples/s3.yml');
  const berth = await berthOnS3('/conformance-streamed', { REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' }, example);
  tt.teardown(() => berth.stop());
  const report = await runConformance({ url: berth.url, strict: true });
  assertEach(tt, report.results);
  tt.ok(report.passed > 100, `a full run has over 100 checks (${report.passed} passed)`);
});

t.test('berth on S3 redirecting blob GETs passes every MUST', async (tt) => {
  const berth = await berthOnS3('/conformance');
  tt.teardown(() => berth.stop());
  const report = await runConformance({ url: berth.url });
  assertEach(tt, report.results);
  tt.ok(report.passed + report.warned > 100, `a full run has over 100 checks (${report.passed} passed, ${report.warned} warned: SHOULDs the redirect target lacks)`);
});
