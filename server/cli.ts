#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=300
// The berth command line: one binary, a sub-command per job.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { runTokenServer, USER_USAGE, UsageError, userCommand } from '../auth/cli';
import { ConfigError, loadConfig, maskSecrets, type Config } from './config';
import { createLogger } from './log';
import { cmdDu, cmdGc, cmdVerify } from './maintenance';
import { serve } from './serve';

const USAGE = `usage: berth <command> [options]

commands:
  serve [--config FILE]        run the registry (config also as: serve FILE)
  config check FILE            validate a config and print the effective settings (secrets masked)
  token-server [--config FILE] run only the token service (the config's tokenserver section)
  user add|passwd|remove NAME  manage the token service's users file (see: berth user --help)
  gc [--config FILE] [--dry-run] [--delete-untagged] [--min-age DURATION] [--json]
                               collect garbage while the registry runs (exit 3: another collector holds the lease)
  verify [--config FILE] [--repair] [--json]
                               re-hash every blob, check every link; exit 1 when anything is wrong
  du [--config FILE] [--json]  bytes as clients see them against bytes stored, per repository
  --version                    print the version
`;

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
  return pkg.version;
}

/** --config FILE (or a bare FILE argument, distribution's style). */
export function configArg(args: string[]): string | undefined {
  const i = args.indexOf('--config');
  if (i >= 0) {
    if (!args[i + 1]) throw new ConfigError('--config needs a file');
    return args[i + 1];
  }
  return args.find((a) => !a.startsWith('-')) ?? process.env.BERTH_CONFIG;
}

/** Load the config or exit 2 with a clear message. */
export function loadOrExit(file: string | undefined): Config {
  try {
    const { config, warnings } = loadConfig(file);
    for (const w of warnings) process.stderr.write(`berth: warning: ${w}\n`);
    return config;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`berth: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

async function cmdServe(args: string[]): Promise<void> {
  const config = loadOrExit(configArg(args));
  const logger = createLogger(config.log.level, { service: 'berth', ...config.log.fields });
  const running = await serve(config, logger).catch((e) => {
    logger.error('cannot start', { error: (e as Error).message });
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('signal received', { signal });
    running.shutdown().then(
      () => process.exit(0),
      (e) => {
        logger.error('shutdown failed', { error: String(e) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function cmdConfig(args: string[]): void {
  if (args[0] !== 'check' || !args[1]) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const config = loadOrExit(args[1]);
  process.stdout.write(`# ${args[1]}: valid\n${YAML.stringify(maskSecrets(config))}`);
}

async function cmdTokenServer(args: string[]): Promise<void> {
  const config = loadOrExit(configArg(args));
  if (!config.tokenserver) {
    process.stderr.write('berth: configuration error: token-server needs a tokenserver section\n');
    process.exit(2);
  }
  const logger = createLogger(config.log.level, { service: 'berth-token', ...config.log.fields });
  await runTokenServer(config.tokenserver, logger);
}

async function cmdUser(args: string[]): Promise<void> {
  const i = args.indexOf('--users');
  let usersFile: string | undefined;
  if (i >= 0) {
    usersFile = args[i + 1];
    args = [...args.slice(0, i), ...args.slice(i + 2)];
  } else if (args.includes('--config')) {
    const j = args.indexOf('--config');
    usersFile = loadOrExit(args[j + 1]).tokenserver?.users;
    args = [...args.slice(0, j), ...args.slice(j + 2)];
  }
  if (!usersFile || args[0] === '--help') {
    process.stderr.write(USER_USAGE);
    process.exit(args[0] === '--help' ? 0 : 2);
  }
  try {
    await userCommand(args, usersFile);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`berth: ${e.message}\n`);
    process.exit(2);
  }
}
/** Maintenance commands return an exit code; bad flags are usage errors (exit 2). */
const maintenance = (cmd: (args: string[], load: (file: string | undefined) => Config) => Promise<number>) => async (args: string[]) => {
  let code: number;
  try {
    code = await cmd(args, loadOrExit);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`berth: ${e.message}\n${USAGE}`);
    code = 2;
  }
  // Exit once stdout is flushed: a pipe is asynchronous, and a JSON report can be large.
  process.stdout.write('', () => process.exit(code));
};

const COMMANDS: Record<string, (args: string[]) => void | Promise<void>> = {
  serve: cmdServe,
  config: cmdConfig,
  'token-server': cmdTokenServer,
  user: cmdUser,
  gc: maintenance(cmdGc),
  verify: maintenance(cmdVerify),
  du: maintenance(cmdDu),
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv;
  if (cmd === '--version' || cmd === 'version') {
    process.stdout.write(`berth ${version()}\n`);
    return;
  }
  const run = cmd ? COMMANDS[cmd] : undefined;
  if (!run) {
    process.stderr.write(USAGE);
    process.exit(cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2);
  }
  await run(args);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`berth: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
