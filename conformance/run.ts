#!/usr/bin/env node
// CLI: node dist/conformance/run.js --url http://127.0.0.1:5000 [options]
import { parseArgs } from 'node:util';
import { CATEGORIES, formatResult, runConformance, type Category } from './index';

const USAGE = `usage: node dist/conformance/run.js [--url URL] [options]

  --url URL               registry base URL (or REGISTRY_URL; default http://127.0.0.1:5000)
  --namespace NAME        prefix of the repositories written (or CONFORMANCE_NAMESPACE;
                          default conformance/<random>)
  --cross-namespace NAME  repository blobs are mounted from (default <namespace>/mount-source)
  --skip CATEGORY         skip pull, push, discovery or management (repeatable, or comma list)
  --deletes-disabled      the registry refuses deletes: expect 405 UNSUPPORTED
  --user USER             credentials for Basic or Bearer token auth
  --password PASSWORD     (or CONFORMANCE_USER / CONFORMANCE_PASSWORD)
  --strict                SHOULD and MAY shortfalls fail instead of warn
  --filter REGEXP         run only checks whose "category: name" matches
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      namespace: { type: 'string' },
      'cross-namespace': { type: 'string' },
      skip: { type: 'string', multiple: true },
      'deletes-disabled': { type: 'boolean' },
      user: { type: 'string' },
      password: { type: 'string' },
      strict: { type: 'boolean' },
      filter: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const skip = (values.skip ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const bad = skip.filter((c) => !(CATEGORIES as readonly string[]).includes(c));
  if (bad.length) {
    process.stderr.write(`unknown category ${bad.join(', ')}; choose from ${CATEGORIES.join(', ')}\n${USAGE}`);
    return 2;
  }
  const url = values.url ?? process.env.REGISTRY_URL ?? 'http://127.0.0.1:5000';
  const t0 = Date.now();
  const report = await runConformance({
    url,
    namespace: values.namespace ?? process.env.CONFORMANCE_NAMESPACE,
    crossNamespace: values['cross-namespace'],
    skip: skip as Category[],
    deletesDisabled: values['deletes-disabled'] ?? false,
    username: values.user ?? process.env.CONFORMANCE_USER,
    password: values.password ?? process.env.CONFORMANCE_PASSWORD,
    strict: values.strict ?? false,
    filter: values.filter ? new RegExp(values.filter) : undefined,
    onResult: (r) => process.stdout.write(formatResult(r) + '\n'),
  });
  process.stdout.write(
    `\nregistry ${url}, repositories under ${report.namespace}, ${((Date.now() - t0) / 1000).toFixed(1)} s\n` +
      `${report.warned} warnings (SHOULD/MAY not met), ${report.skipped} skipped\n` +
      `${report.passed} passed, ${report.failed} failed\n`,
  );
  return report.failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`conformance: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 2;
  },
);
