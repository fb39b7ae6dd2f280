// The token service's users file: salted scrypt hashes (node:crypto), groups,
// and robot accounts whose secrets are long random strings made by berth.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';

const scrypt = promisify(crypto.scrypt) as (
  pw: crypto.BinaryLike,
  salt: crypto.BinaryLike,
  len: number,
  opts: crypto.ScryptOptions,
) => Promise<Buffer>;

/** Cost parameters of new hashes (N=2^15, r=8: 32 MiB and tens of ms per check). Stored in each hash. */
const COST = { N: 1 << 15, r: 8, p: 1 };
const KEY_LEN = 32;
const MAX_PASSWORD = 1024;

/** Names a user can have: a repository path component, so `{user}/…` policies work. */
export const USER_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const RESERVED = new Set(['anonymous', 'authenticated']);

export interface User {
  name: string;
  /** `scrypt$N$r$p$salt$hash` (salt and hash base64). */
  password: string;
  groups: string[];
  robot: boolean;
}

export function validUserName(name: string): boolean {
  return name.length <= 64 && USER_NAME.test(name) && !RESERVED.has(name);
}

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password.normalize('NFC'), salt, KEY_LEN, { ...COST, maxmem: 256 * COST.N * COST.r });
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/** Constant-time check of a password against a stored hash; false for malformed hashes. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt' || password.length > MAX_PASSWORD) return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4], 'base64');
  const want = Buffer.from(parts[5], 'base64');
  if (!(N >= 2 && N <= 1 << 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16) || want.length < 16) return false;
  const got = await scrypt(password.normalize('NFC'), salt, want.length, { N, r, p, maxmem: 256 * N * r * p });
  return crypto.timingSafeEqual(got, want);
}

/** A secret for a robot account: 256 random bits. */
export function robotSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function parseUsers(text: string): Map<string, User> {
  const doc = (YAML.parse(text) ?? {}) as { users?: Record<string, unknown> };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('expected a mapping with a "users" key');
  for (const k of Object.keys(doc)) if (k !== 'users') throw new Error(`unknown key "${k}"`);
  const users = new Map<string, User>();
  for (const [name, v] of Object.entries(doc.users ?? {})) {
    const e = v as Partial<User> | null;
    if (!validUserName(name)) throw new Error(`invalid user name "${name}"`);
    if (!e || typeof e.password !== 'string') throw new Error(`user "${name}": no password hash`);
    for (const k of Object.keys(e)) {
      if (!['password', 'groups', 'robot'].includes(k)) throw new Error(`user "${name}": unknown key "${k}"`);
    }
    const groups = e.groups ?? [];
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
      throw new Error(`user "${name}": groups must be a list of names`);
    }
    users.set(name, { name, password: e.password, groups, robot: e.robot === true });
  }
  return users;
}

export function serializeUsers(users: Map<string, User>): string {
  const out: Record<string, Record<string, unknown>> = {};
  for (const u of [...users.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    out[u.name] = { password: u.password, ...(u.groups.length ? { groups: u.groups } : {}), ...(u.robot ? { robot: true } : {}) };
  }
  return '# berth users: managed with `berth user add|passwd|remove`\n' + YAML.stringify({ users: out });
}

/** Read-modify-write of the users file, replaced atomically and readable by its owner only. */
export function updateUsersFile(file: string, change: (users: Map<string, User>) => void): void {
  const users = fs.existsSync(file) ? parseUsers(fs.readFileSync(file, 'utf8')) : new Map<string, User>();
  change(users);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, serializeUsers(users), { mode: 0o600 });
  fs.renameSync(tmp, file);
}
