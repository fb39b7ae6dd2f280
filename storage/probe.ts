// The start-up check of a store: one small object written, read back and
// deleted (or, for a read-only registry, one cheap read), within a time limit.
// Nothing is walked. A store berth cannot write is found here, before a push
// would meet it.
import crypto from 'node:crypto';
import os from 'node:os';
import type { StorageDriver } from './driver';
import { paths } from './paths';

export class StoreProbeError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'StoreProbeError';
  }
}

async function writeReadDelete(driver: StorageDriver): Promise<void> {
  // Beside GC's keys (_berth/), which distribution ignores; named so replicas starting together do not meet.
  const key = `${paths.root}/_berth/probe-${os.hostname()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const body = Buffer.from(`berth start-up probe ${new Date().toISOString()}\n`);
  await driver.putContent(key, body);
  try {
    if (!(await driver.getContent(key)).equals(body)) throw new StoreProbeError('what was written reads back different');
  } finally {
    await driver.delete(key);
  }
}

/** Resolves when the store takes (or, with write false, answers) requests; otherwise a StoreProbeError that says why. */
export async function probeStore(driver: StorageDriver, opts: { write: boolean; timeoutMs: number }): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreProbeError(`no answer within ${opts.timeoutMs / 1000}s`, 'TIMEOUT')), opts.timeoutMs);
  });
  try {
    await Promise.race([opts.write ? writeReadDelete(driver) : driver.healthCheck(), limit]);
  } catch (e) {
    if (e instanceof StoreProbeError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).name;
    throw new StoreProbeError((e as Error).message, code);
  } finally {
    clearTimeout(timer);
  }
}
