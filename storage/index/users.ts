// Blob → users: which repositories link a blob and which of their images use
// it, as empty marker objects in one directory per blob. A marker is written
// before the link it describes and removed after the link goes, so a crash
// leaves a stale marker (readers check links where it matters), never a
// missing one.
import { isDigest, type Digest } from '../digest';
import { isNotFound, type StorageDriver } from '../driver';
import { forEachLimit } from '../pool';
import { indexKeys, parseUser, userEntry } from './keys';

const EMPTY = Buffer.alloc(0);

export interface BlobUse {
  /** Repositories that link the blob (a layer link, a manifest revision, or an image using it). */
  repos: Set<string>;
  /** Images that use it, as `repo@digest`. */
  images: { repo: string; digest: string }[];
}

export class BlobUsers {
  constructor(private readonly driver: StorageDriver) {}

  async mark(d: Digest, repo: string, images: string[] = []): Promise<void> {
    const entries = images.length ? images.map((i) => userEntry(repo, i)) : [userEntry(repo)];
    await forEachLimit(entries, 8, (e) => this.driver.putContent(`${indexKeys.blobUsers(d)}/${e}`, EMPTY));
  }

  async unmark(d: Digest, repo: string, image?: string): Promise<void> {
    await this.driver.delete(`${indexKeys.blobUsers(d)}/${userEntry(repo, image)}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }

  /** Every user of the blob. */
  async list(d: Digest): Promise<BlobUse> {
    const use: BlobUse = { repos: new Set(), images: [] };
    await this.each(d, (u) => {
      use.repos.add(u.repo);
      if (u.image) use.images.push({ repo: u.repo, digest: u.image });
      return true;
    });
    return use;
  }

  /** Other repositories than `repo` that use the blob, listing no further than `limit` of them. */
  async others(d: Digest, repo: string, limit: number): Promise<string[]> {
    const out: string[] = [];
    await this.each(d, (u) => {
      if (u.repo !== repo && !out.includes(u.repo)) out.push(u.repo);
      return out.length < limit;
    });
    return out;
  }

  /** The first repository using the blob that `accept` takes (each asked once), reading no further. */
  async find(d: Digest, accept: (repo: string) => Promise<boolean>): Promise<string | undefined> {
    const asked = new Set<string>();
    let found: string | undefined;
    await this.each(d, async (u) => {
      if (asked.has(u.repo)) return true;
      asked.add(u.repo);
      if (await accept(u.repo)) found = u.repo;
      return found === undefined;
    });
    return found;
  }

  /**
   * Walk the markers while fn returns true. In no particular order where the
   * driver can scan (a filesystem: a sorted page of a directory of 100,000
   * markers would read all of them, and each further page again).
   */
  private async each(d: Digest, fn: (u: { repo: string; image?: string }) => boolean | Promise<boolean>): Promise<void> {
    const dir = indexKeys.blobUsers(d);
    const visit = async (names: string[]) => {
      for (const name of names) {
        const u = parseUser(name);
        if (u.image && !isDigest(u.image)) continue;
        if (!(await fn(u))) return false;
      }
      return true;
    };
    try {
      if (this.driver.scan) return await this.driver.scan(dir, visit);
      for (let after: string | undefined; ; ) {
        const page = await this.driver.listPage(dir, after, 1000);
        if (!(await visit(page.names)) || !page.next) return;
        after = page.next;
      }
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
