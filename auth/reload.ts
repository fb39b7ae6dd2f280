// A small config file (users, policy, htpasswd) kept parsed in memory and
// re-read when it changes on disk, so edits apply without a restart.
import fs from 'node:fs';

const CHECK_INTERVAL_MS = 1000;

export class ReloadingFile<T> {
  private value!: T;
  private signature = '';
  private checkedAt = 0;

  /**
   * `missing` is the value while the file does not exist (undefined: the file is required).
   * A change that fails to parse is reported through `onError` and the previous value kept.
   */
  constructor(
    readonly path: string,
    private readonly parse: (text: string) => T,
    private readonly onError: (err: Error) => void,
    private readonly missing?: T,
  ) {
    this.refresh(true);
    this.checkedAt = Date.now();
  }

  get(): T {
    const now = Date.now();
    if (now - this.checkedAt >= CHECK_INTERVAL_MS) {
      this.checkedAt = now;
      this.refresh(false);
    }
    return this.value;
  }

  private refresh(initial: boolean): void {
    let sig: string;
    try {
      const st = fs.statSync(this.path);
      sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return this.fail(err as Error, initial);
      if (this.missing === undefined) return this.fail(new Error(`${this.path}: file not found`), initial);
      this.value = this.missing;
      this.signature = 'missing';
      return;
    }
    if (sig === this.signature) return;
    try {
      this.value = this.parse(fs.readFileSync(this.path, 'utf8'));
      this.signature = sig;
    } catch (err) {
      // Remember the broken version so it is reported once, not on every check.
      if (!initial) this.signature = sig;
      this.fail(new Error(`${this.path}: ${(err as Error).message}`), initial);
    }
  }

  private fail(err: Error, initial: boolean): void {
    if (initial) throw err;
    this.onError(err);
  }
}
