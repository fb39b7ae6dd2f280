// Scheduled GC inside `serve`: two replicas on one store, both with GC
// enabled; the lease lets one collect at a time, the garbage goes exactly
// once, and what is tagged stays. Also: a bad retention policy is a clear
// configuration error.
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { runCli } from './helpers/cli';
import { getBytes, pushImage, randomBlob, verifyPull } from './helpers/registry-client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('two replicas with scheduled GC collect the garbage once', async (t) => {
  const root = tempDir('berth-gc-sched-');
  const env = {
    REGISTRY_LOG_LEVEL: 'info',
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    REGISTRY_BERTH_GC_ENABLED: 'true',
    REGISTRY_BERTH_GC_INTERVAL: '700ms',
    REGISTRY_BERTH_GC_MINAGE: '2s', // long enough for a push's layers to meet its manifest
    REGISTRY_BERTH_GC_DELETEUNTAGGED: 'true',
  };
  const a = await startBerth({ root, env });
  const b = await startBerth({ root, env });
  t.teardown(() => Promise.all([a.stop(), b.stop()]));

  const base = randomBlob(4096);
  const old = await pushImage(a.url, 'sched/app', 'latest', randomBlob(100), [base, randomBlob(2048)]);
  const cur = await pushImage(b.url, 'sched/app', 'latest', randomBlob(100), [base, randomBlob(2048)]);

  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && (await getBytes(a.url, `/v2/sched/app/manifests/${old.digest}`)).status !== 404) await sleep(200);
  t.equal((await getBytes(a.url, `/v2/sched/app/manifests/${old.digest}`)).status, 404, 'the overwritten image was collected');
  t.equal((await getBytes(b.url, `/v2/sched/app/blobs/${old.blobs[2].digest}`)).status, 404, 'with its own layer');
  t.same(await verifyPull(a.url, cur), [], 'the tagged image pulls from one replica');
  t.same(await verifyPull(b.url, cur), [], 'and from the other');

  await sleep(1500); // a few more scheduled rounds
  const runs = [a, b].flatMap((r) =>
    r
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"gc"'))
      .map((l) => JSON.parse(l)),
  );
  t.ok(runs.length >= 2, `scheduled runs happened (${runs.length})`);
  t.equal(runs.reduce((n, r) => n + r.manifestsDeleted, 0), 1, 'the manifest was deleted by exactly one run');
  t.equal(runs.reduce((n, r) => n + r.blobsDeleted, 0), 3, 'its content, config and own layer, once');
  t.notOk(/gc failed/.test(a.output() + b.output()), 'no run failed');
});

t.test('a retention policy without a repository pattern is a configuration error', async (t) => {
  const root = tempDir('berth-gc-conf-');
  const r = await runCli(['gc', '--dry-run'], root, { REGISTRY_BERTH_GC_RETENTION: '[{"keeplatest": 3}]' });
  t.equal(r.code, 2);
  t.match(r.stderr, /berth\.gc\.retention\[0\]\.repository is required/);
  const ok = await runCli(['gc', '--dry-run', '--min-age', '0s'], root, { REGISTRY_BERTH_GC_RETENTION: '[{"repository": "a/*", "keeplatest": 3, "keeptags": "v.*"}]' });
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^gc: would free 0 B/m);
});
