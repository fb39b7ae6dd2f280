// Slow down repeated failed logins per user name and per client address:
// after a few free failures each further attempt waits longer (capped), which
// makes online password guessing impractical without locking anyone out.
import { LRUCache } from 'lru-cache';

/** Failures allowed before slowing down: per user name, and (higher: many users may share a proxy or NAT) per address. */
const FREE_USER_FAILURES = 5;
const FREE_IP_FAILURES = 20;
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;
const WINDOW_MS = 15 * 60 * 1000;

export class FailureThrottle {
  private readonly failures = new LRUCache<string, { count: number }>({ max: 10000, ttl: WINDOW_MS });

  /** How long to hold an attempt by this user from this address before checking it. */
  delayMs(user: string | undefined, ip: string): number {
    const over = Math.max(
      this.count(`ip:${ip}`) - FREE_IP_FAILURES,
      user === undefined ? -1 : this.count(`user:${user}`) - FREE_USER_FAILURES,
    );
    if (over < 0) return 0;
    return Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** over);
  }

  async wait(user: string | undefined, ip: string): Promise<void> {
    const ms = this.delayMs(user, ip);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  failed(user: string | undefined, ip: string): void {
    this.bump(`ip:${ip}`);
    if (user !== undefined) this.bump(`user:${user}`);
  }

  /** A success clears the user's count; the address keeps its record until it ages out. */
  succeeded(user: string): void {
    this.failures.delete(`user:${user}`);
  }

  private count(key: string): number {
    return this.failures.get(key)?.count ?? 0;
  }

  private bump(key: string): void {
    const e = this.failures.get(key);
    if (e) e.count++;
    else this.failures.set(key, { count: 1 });
  }
}
