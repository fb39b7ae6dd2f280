// Which upstream a repository name is served from. Three ways in:
// - a name under a configured prefix (HOST/dockerhub/library/alpine), or every
//   name with distribution's single `proxy:` (prefix '');
// - containerd's mirror requests, which carry the upstream's namespace as
//   ?ns=docker.io and the upstream's own name (library/alpine);
// - docker's `registry-mirrors`, which send the upstream's name with no hint at
//   all: those go to the entry with `ns: docker.io`, but only when no hosted
//   repository of that name holds what was asked for (hosted content wins).
import { inPrefix, type Config } from '../server/config';

export interface Entry {
  /** '' when the whole registry mirrors one upstream (distribution's `proxy:`). */
  prefix: string;
  remoteurl: string;
  ns?: string;
  username?: string;
  password?: string;
  /** ms a cached tag is served before the upstream is asked again. */
  ttl: number;
  /** ms after its last pull a cached image goes (0: never). */
  expire: number;
  /** Bytes of cached blobs at most (0: no cap). */
  maxsize: number;
  /** The `upstream` label of metrics and logs. */
  label: string;
}

/** How a request's name maps to an upstream. */
export interface Target {
  entry: Entry;
  /** The repository in this registry that caches it. */
  local: string;
  /** The repository's name on the upstream. */
  remote: string;
  /** Docker's registry-mirrors: a hosted repository of the requested name is asked first. */
  fallback: boolean;
}

export const DOCKER_HUB = 'docker.io';

export function entriesFrom(config: Config): Entry[] {
  if (config.proxy) {
    return [{ ...config.proxy, prefix: '', label: new URL(config.proxy.remoteurl).host }];
  }
  return (config.berth.proxies ?? []).map((p) => ({ ...p, label: p.prefix }));
}

/** Docker Hub's official images live under library/: `alpine` there is `library/alpine`. */
function upstreamName(entry: Entry, name: string): string {
  return entry.ns === DOCKER_HUB && !name.includes('/') ? `library/${name}` : name;
}

export class Entries {
  private readonly dockerHub?: Entry;

  constructor(readonly list: Entry[]) {
    this.dockerHub = list.find((e) => e.ns === DOCKER_HUB);
  }

  get enabled(): boolean {
    return this.list.length > 0;
  }

  /** The entry whose prefix holds `name` (what the admin API marks as proxied). */
  byName(name: string): Entry | undefined {
    return this.list.find((e) => inPrefix(e.prefix, name));
  }

  /** Where a pull of `name` (with containerd's ?ns=, if sent) is served from; undefined: a hosted repository only. */
  target(name: string, ns: string | undefined): Target | undefined {
    const prefixed = this.byName(name);
    if (prefixed) return this.under(prefixed, prefixed.prefix ? name.slice(prefixed.prefix.length + 1) : name, false);
    const byNs = ns ? this.list.find((e) => e.ns === ns) : undefined;
    if (byNs) return this.under(byNs, name, false);
    // A mirror request with no prefix and no ns can only be Docker's (Docker Hub is the only registry it mirrors).
    if (!ns && this.dockerHub) return this.under(this.dockerHub, name, true);
    return undefined;
  }

  /** One cache per upstream image: dockerhub/alpine and a mirrored library/alpine are both dockerhub/library/alpine. */
  private under(entry: Entry, upstream: string, fallback: boolean): Target {
    const remote = upstreamName(entry, upstream);
    return { entry, local: entry.prefix ? `${entry.prefix}/${remote}` : remote, remote, fallback };
  }
}
