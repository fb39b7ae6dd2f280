// `berth user add|passwd|remove NAME` and `berth token-server`.
import http from 'node:http';
import readline from 'node:readline';
import { Writable } from 'node:stream';
import Koa from 'koa';
import { parseAddr } from '../server/config';
import type { TokenServerConfig } from './config';
import { createTokenService } from './tokenservice';
import type { Logger } from './types';
import { hashPassword, robotSecret, updateUsersFile, validUserName } from './users';

export const USER_USAGE = `usage: berth user add NAME [--group G]... [--robot] (--config FILE | --users FILE)
       berth user passwd NAME [--robot] (--config FILE | --users FILE)
       berth user remove NAME (--config FILE | --users FILE)

The password is read from standard input (first line) or prompted for on a terminal;
never pass it as an argument. --robot makes berth generate a long random secret and print it once.
`;

export class UsageError extends Error {}

async function prompt(question: string): Promise<string> {
  // Echo the question, not what is typed.
  let muted = false;
  const out = new Writable({
    write(chunk, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = readline.createInterface({ input: process.stdin, output: out, terminal: true });
  try {
    return await new Promise<string>((resolve) => {
      rl.question(question, (answer) => resolve(answer));
      muted = true;
    });
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) {
    const a = await prompt('Password: ');
    const b = await prompt('Repeat password: ');
    if (a !== b) throw new UsageError('the passwords do not match');
    return a;
  }
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
}

/** Run a user sub-command against the users file `usersFile`; output goes to `out`. */
export async function userCommand(args: string[], usersFile: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const [action, name, ...rest] = args;
  if (!action || !name || !['add', 'passwd', 'remove'].includes(action)) throw new UsageError(USER_USAGE);
  if (!validUserName(name)) {
    throw new UsageError(`invalid user name "${name}": lowercase letters and digits, separated by . _ or - (not "anonymous" or "authenticated")`);
  }
  const groups: string[] = [];
  let robot = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--robot') robot = true;
    else if (rest[i] === '--group' && rest[i + 1]) groups.push(rest[++i]);
    else throw new UsageError(`unexpected argument "${rest[i]}"\n${USER_USAGE}`);
  }
  if (action === 'remove') {
    let found = false;
    updateUsersFile(usersFile, (users) => {
      found = users.delete(name);
    });
    if (!found) throw new UsageError(`no user "${name}"`);
    out.write(`removed ${name}\n`);
    return;
  }
  const secret = robot ? robotSecret() : await readPassword();
  if (!robot && secret.length < 8) throw new UsageError('the password must have at least 8 characters');
  const hash = await hashPassword(secret);
  updateUsersFile(usersFile, (users) => {
    const prev = users.get(name);
    if (action === 'add' && prev) throw new UsageError(`user "${name}" exists (use passwd)`);
    if (action === 'passwd' && !prev) throw new UsageError(`no user "${name}"`);
    users.set(name, { name, password: hash, groups: action === 'add' ? groups : prev!.groups, robot: robot || (prev?.robot ?? false) });
  });
  out.write(action === 'add' ? `added ${name}\n` : `password changed for ${name}\n`);
  if (robot) out.write(`secret (shown once): ${secret}\n`);
}

/** `berth token-server`: the token service alone on tokenserver.addr, until SIGTERM. */
export async function runTokenServer(cfg: TokenServerConfig, log: Logger & { info(msg: string, f?: object): void }): Promise<http.Server> {
  const svc = createTokenService(cfg, log);
  const app = new Koa();
  app.use(svc.middleware);
  app.use((ctx) => {
    if (ctx.path === '/healthz') ctx.body = { status: 'ok' };
    else {
      ctx.status = 404;
      ctx.body = { errors: [{ code: 'NOT_FOUND', message: `the token endpoint is ${svc.path}` }] };
    }
  });
  const server = http.createServer(app.callback());
  const { host, port } = parseAddr(cfg.addr ?? ':5001');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  log.info('token server listening', { addr: cfg.addr, path: svc.path, services: cfg.services });
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}
