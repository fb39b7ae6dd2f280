// A StorageDriver decorator that times every operation and reports failures,
// so drivers stay free of metrics code. A missing path is a normal answer
// (lookups probe for links), not a failure.
import type { Readable } from 'node:stream';
import { isNotFound, type FileInfo, type FileWriter, type ListPage, type StorageDriver } from './driver';

/** Called once per driver operation with its duration; failed is false for not-found. */
export type StorageObserver = (driver: string, operation: string, seconds: number, failed: boolean) => void;

export function instrumentDriver(inner: StorageDriver, observe: StorageObserver): StorageDriver {
  return new InstrumentedDriver(inner, observe);
}

class InstrumentedDriver implements StorageDriver {
  readonly name: string;
  /** Present only when the inner driver has it (callers test for it). */
  readonly listMarkedDirs?: (path: string, childPrefix: string) => Promise<string[]>;
  readonly atomicWriter?: (path: string) => Promise<FileWriter>;
  readonly abortStaleWrites?: (path: string, before: Date) => Promise<number>;
  readonly scan?: (path: string, fn: (names: string[]) => boolean | Promise<boolean>) => Promise<void>;

  constructor(
    private readonly inner: StorageDriver,
    private readonly observe: StorageObserver,
  ) {
    this.name = inner.name;
    if (inner.listMarkedDirs) {
      this.listMarkedDirs = (path, childPrefix) => this.time('listMarkedDirs', () => inner.listMarkedDirs!(path, childPrefix));
    }
    if (inner.atomicWriter) {
      this.atomicWriter = async (path) => this.timedWriter(await this.time('atomicWriter', () => inner.atomicWriter!(path)));
    }
    if (inner.scan) {
      this.scan = (path, fn) => this.time('scan', () => inner.scan!(path, fn));
    }
    if (inner.abortStaleWrites) {
      this.abortStaleWrites = (path, before) => this.time('abortStaleWrites', () => inner.abortStaleWrites!(path, before));
    }
  }

  private async time<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    let failed = false;
    try {
      return await fn();
    } catch (e) {
      failed = !isNotFound(e);
      throw e;
    } finally {
      this.observe(this.name, operation, Number(process.hrtime.bigint() - started) / 1e9, failed);
    }
  }

  getContent(path: string): Promise<Buffer> {
    return this.time('getContent', () => this.inner.getContent(path));
  }
  putContent(path: string, content: Buffer): Promise<void> {
    return this.time('putContent', () => this.inner.putContent(path, content));
  }
  /** Times opening the stream; reading it runs at the client's pace. */
  reader(path: string, offset?: number, end?: number): Promise<Readable> {
    return this.time('reader', () => this.inner.reader(path, offset, end));
  }
  async writer(path: string, append: boolean): Promise<FileWriter> {
    return this.timedWriter(await this.time('writer', () => this.inner.writer(path, append)));
  }
  private timedWriter(w: FileWriter): FileWriter {
    const time = this.time.bind(this);
    return {
      write: (chunk) => time('write', () => w.write(chunk)),
      get size() {
        return w.size;
      },
      close: () => time('close', () => w.close()),
      commit: () => time('commit', () => w.commit()),
      cancel: () => time('cancel', () => w.cancel()),
    };
  }
  stat(path: string): Promise<FileInfo> {
    return this.time('stat', () => this.inner.stat(path));
  }
  list(path: string): Promise<string[]> {
    return this.time('list', () => this.inner.list(path));
  }
  listPage(path: string, after: string | undefined, limit: number): Promise<ListPage> {
    return this.time('listPage', () => this.inner.listPage(path, after, limit));
  }
  move(src: string, dst: string): Promise<void> {
    return this.time('move', () => this.inner.move(src, dst));
  }
  delete(path: string): Promise<void> {
    return this.time('delete', () => this.inner.delete(path));
  }
  walk(path: string, fn: (info: FileInfo) => Promise<void | 'skip'> | void | 'skip'): Promise<void> {
    return this.time('walk', () => this.inner.walk(path, fn));
  }
  redirectURL(path: string, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    return this.time('redirectURL', () => this.inner.redirectURL(path, method));
  }
  healthCheck(): Promise<void> {
    return this.time('healthCheck', () => this.inner.healthCheck());
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
