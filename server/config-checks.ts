// The config's rules that span keys (a driver's required keys, the index's
// timings, notification endpoints, pull-through caches): run by config.ts once
// the schema has coerced every value and applied the defaults.
import type { S3DriverOptions } from '../storage/drivers/s3';
import { isValidName } from '../storage/names';
import type { Config } from './config';

/** Rules that span keys; each failure is collected, not thrown. */
export function checkValues(config: Config, errors: string[]): void {
  const { storage } = config;
  if (storage.filesystem && !storage.filesystem.rootdirectory) errors.push('storage.filesystem.rootdirectory is required');
  const s3 = storage.s3 as Partial<S3DriverOptions> | undefined;
  if (s3) {
    for (const k of ['bucket', 'region'] as const) if (!s3[k]) errors.push(`storage.s3.${k} is required`);
    if (Boolean(s3.accesskey) !== Boolean(s3.secretkey)) {
      errors.push('storage.s3: set both accesskey and secretkey, or neither (to use the AWS credential chain)');
    }
    if (s3.maxuploadparts! > 10_000) errors.push('storage.s3.maxuploadparts must be at most 10000');
  }
  if (config.berth.blobcache.rootdirectory && !s3) {
    errors.push('berth.blobcache keeps S3 blobs on local disk; with storage.filesystem they are local already');
  }
  const idx = config.berth.index;
  if (idx.pollinterval < 100 || idx.reconcileinterval < 100) errors.push('berth.index.pollinterval and reconcileinterval must be at least 100ms');
  // A replica starting from a snapshot replays the feed since it: the feed must outlive a snapshot.
  if (idx.feedretention < idx.snapshotinterval + 120_000) errors.push('berth.index.feedretention must exceed berth.index.snapshotinterval by at least 2m');
  for (const which of ['allow', 'deny'] as const) {
    for (const [i, re] of (config.validation.manifests.urls[which] ?? []).entries()) {
      try {
        new RegExp(re);
      } catch (e) {
        errors.push(`validation.manifests.urls.${which}[${i}] is not a regular expression: ${(e as Error).message}`);
      }
    }
  }
  checkEndpoints(config, errors);
  checkProxies(config, errors);
}

function checkEndpoints(config: Config, errors: string[]): void {
  const names = new Set<string>();
  (config.notifications.endpoints ?? []).forEach((e, i) => {
    const where = `notifications.endpoints[${i}]`;
    if (!e.name) errors.push(`${where}.name is required`);
    else if (names.has(e.name)) errors.push(`${where}.name "${e.name}" is used twice`);
    names.add(e.name);
    const problem = httpURLProblem(e.url, `${where}.url`);
    if (problem) errors.push(problem);
  });
}

/** An error message unless v is an http(s) URL. */
function httpURLProblem(v: string | undefined, where: string): string | undefined {
  let url: URL | undefined;
  try {
    url = new URL(v ?? '');
  } catch {
    url = undefined;
  }
  return !url || (url.protocol !== 'http:' && url.protocol !== 'https:') ? `${where} must be an http(s) URL (got "${v ?? ''}")` : undefined;
}

function checkProxies(config: Config, errors: string[]): void {
  const push = (e: string | undefined) => e && errors.push(e);
  if (config.proxy) {
    push(httpURLProblem(config.proxy.remoteurl, 'proxy.remoteurl'));
    if (config.berth.proxies?.length) errors.push('proxy makes the whole registry a mirror of one upstream; use berth.proxies alone to mirror several beside hosted repositories');
  }
  const seen = new Map<string, string>();
  (config.berth.proxies ?? []).forEach((p, i) => {
    const where = `berth.proxies[${i}]`;
    push(httpURLProblem(p.remoteurl, `${where}.remoteurl`));
    if (!p.prefix || !isValidName(p.prefix)) {
      errors.push(`${where}.prefix must be a repository name such as "dockerhub" (got "${p.prefix ?? ''}")`);
      return;
    }
    for (const [other, w] of seen) {
      if (other === p.prefix || other.startsWith(`${p.prefix}/`) || p.prefix.startsWith(`${other}/`)) errors.push(`${where}.prefix "${p.prefix}" overlaps ${w}'s "${other}"`);
    }
    seen.set(p.prefix, where);
    if (p.ns !== undefined && config.berth.proxies!.some((q, j) => j < i && q.ns === p.ns)) errors.push(`${where}.ns "${p.ns}" is used twice`);
  });
}
