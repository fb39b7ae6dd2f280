// The bench's command line: every flag, with defaults that depend on the
// storage backend. See bench/README.md (`--help` prints it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

export const MiB = 1 << 20;

export function usage(msg: string): never {
  console.error(`bench: ${msg} (see --help)`);
  process.exit(2);
}

const options = {
  targets: { type: 'string', default: 'berth,distribution' },
  backend: { type: 'string', default: 'filesystem' },
  // Defaults of rounds, blob-mib, list-requests and only depend on the backend (see DEFAULTS).
  rounds: { type: 'string' },
  'blob-mib': { type: 'string' },
  'chunk-mib': { type: 'string', default: '8' },
  'pull-clients': { type: 'string', default: '8' },
  'pull-seconds': { type: 'string', default: '5' },
  connections: { type: 'string', default: '64' },
  seconds: { type: 'string', default: '10' },
  repos: { type: 'string', default: '2000' },
  tags: { type: 'string', default: '500' },
  'tag-clients': { type: 'string', default: '8' },
  'list-seconds': { type: 'string', default: '5' },
  'push-clients': { type: 'string', default: '32' },
  'push-mib': { type: 'string', default: '4' },
  'list-requests': { type: 'string' },
  'mixed-clients': { type: 'string', default: '64' },
  'mixed-seconds': { type: 'string', default: '60' },
  only: { type: 'string' },
  'cpu-prof': { type: 'string' },
  'berth-node-args': { type: 'string', default: '' },
  'berth-env': { type: 'string', default: '' },
  blobcache: { type: 'boolean', default: false },
  json: { type: 'string' },
  dir: { type: 'string', default: os.tmpdir() },
  help: { type: 'boolean', default: false },
} as const;

export const opt = (() => {
  try {
    return parseArgs({ options }).values;
  } catch (e) {
    usage((e as Error).message);
  }
})();

if (opt.help) {
  console.log(fs.readFileSync(path.resolve(__dirname, '../../bench/README.md'), 'utf8'));
  process.exit(0);
}

export const WORKLOADS = ['push', 'pull', 'manifest', 'catalog', 'walk', 'tags', 'cpush', 'mixed'];

const DEFAULTS: Record<string, { rounds: string; 'blob-mib': string; 'list-requests': string; only: string }> = {
  filesystem: { rounds: '3', 'blob-mib': '256', 'list-requests': '10', only: 'push,pull,manifest,catalog,walk,tags,cpush' },
  // Every S3 request goes through one Swift proxy on the same 2 cores: smaller
  // blobs and fewer rounds keep the run to a few minutes. No full catalog walk:
  // distribution lists the store from the start for every page, so one walk
  // of 20 pages takes it minutes.
  s3: { rounds: '2', 'blob-mib': '32', 'list-requests': '3', only: 'push,pull,catalog' },
};

export const BACKEND_NAME = opt.backend!;
const defaults = DEFAULTS[BACKEND_NAME] ?? usage(`unknown --backend ${BACKEND_NAME}; known: ${Object.keys(DEFAULTS).join(', ')}`);

function num(k: keyof typeof opt): number {
  const n = Number(opt[k] ?? defaults[k as keyof typeof defaults]);
  if (!Number.isFinite(n) || n <= 0) usage(`--${k} must be a positive number`);
  return n;
}

export const ROUNDS = num('rounds');
export const BLOB = Math.round(num('blob-mib') * MiB);
export const CHUNK = Math.round(num('chunk-mib') * MiB);
export const PULLERS = num('pull-clients');
export const PULL_SECONDS = num('pull-seconds');
export const CONNS = num('connections');
export const SECONDS = num('seconds');
export const REPOS = num('repos');
export const TAGS = num('tags');
export const TAG_CLIENTS = num('tag-clients');
export const LIST_SECONDS = num('list-seconds');
export const PUSHERS = num('push-clients');
export const PUSH_BLOB = Math.round(num('push-mib') * MiB);
export const LIST_REQS = num('list-requests');
export const MIXED_CLIENTS = num('mixed-clients');
export const MIXED_SECONDS = num('mixed-seconds');
export const ONLY = new Set((opt.only ?? defaults.only).split(','));
for (const w of ONLY) if (!WORKLOADS.includes(w)) usage(`unknown workload ${w} in --only; known: ${WORKLOADS.join(', ')}`);
