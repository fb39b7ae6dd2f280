// Per-repository tag facts: which tags point at a manifest (so a delete by
// digest does not read every tag of the repository), and who pushed each tag
// when — the one fact distribution's layout cannot tell, kept append-only.
import crypto from 'node:crypto';
import type { Digest } from '../digest';
import { isNotFound, type StorageDriver } from '../driver';
import { listOrEmpty } from '../repositories';
import { paths } from '../paths';
import { indexKeys, newestFirst } from './keys';

const EMPTY = Buffer.alloc(0);
/** Push records kept per tag (older ones are pruned now and then). */
const HISTORY = 50;

export interface PushRecord {
  digest: string;
  /** Epoch ms. */
  at: number;
  /** Who pushed (the token's subject or htpasswd user); undefined when anonymous or not recorded. */
  by?: string;
}

export class TagFacts {
  constructor(private readonly driver: StorageDriver) {}

  /** Before a tag moves to d: the marker that lets a delete of d find the tag. */
  markTag(repo: string, tag: string, d: Digest): Promise<void> {
    return this.driver.putContent(`${indexKeys.tagsOf(repo, d)}/${tag}`, EMPTY);
  }

  async unmarkTag(repo: string, tag: string, d: Digest): Promise<void> {
    await this.driver.delete(`${indexKeys.tagsOf(repo, d)}/${tag}`).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
  }

  /** Tags marked as pointing at d (some may have moved since: check their links). */
  markedTags(repo: string, d: Digest): Promise<string[]> {
    return listOrEmpty(this.driver, indexKeys.tagsOf(repo, d));
  }

  async recordPush(repo: string, tag: string, rec: PushRecord): Promise<void> {
    const dir = indexKeys.pushes(repo, tag);
    await this.driver.putContent(`${dir}/${newestFirst(rec.at)}-${crypto.randomBytes(4).toString('hex')}`, Buffer.from(JSON.stringify(rec)));
    // Amortised pruning: a tag pushed by every CI build keeps a bounded history.
    if (Math.random() < 0.05) {
      const page = await this.driver.listPage(dir, undefined, HISTORY);
      let after = page.next;
      while (after) {
        const older = await this.driver.listPage(dir, after, 1000);
        for (const n of older.names) await this.driver.delete(`${dir}/${n}`).catch(() => undefined);
        after = older.next;
      }
    }
  }

  /**
   * Who pushed the tag's current digest, and when. A store written by
   * distribution has no records: the time is then the tag link's, the pusher unknown.
   */
  async lastPush(repo: string, tag: string, digest: string): Promise<{ at?: number; by?: string }> {
    let page;
    try {
      page = await this.driver.listPage(indexKeys.pushes(repo, tag), undefined, 1);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      page = { names: [] };
    }
    const newest = page.names[0];
    if (newest) {
      try {
        const rec = JSON.parse((await this.driver.getContent(`${indexKeys.pushes(repo, tag)}/${newest}`)).toString('utf8')) as PushRecord;
        if (rec.digest === digest) return { at: rec.at, by: rec.by };
      } catch (e) {
        if (!isNotFound(e) && !(e instanceof SyntaxError)) throw e;
      }
      // Otherwise the tag moved by a write without a record (distribution, or a
      // crash before the record): the link's time is the best there is.
    }
    try {
      return { at: (await this.driver.stat(paths.tagCurrentLink(repo, tag))).modTime.getTime() };
    } catch (e) {
      if (isNotFound(e)) return {};
      throw e;
    }
  }
}
