#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=300
// The berth command line: one binary, a sub-command per job. Each command
// declares its usage; `berth CMD --help` (or -h) prints it and exits 0 before
// the command runs, so no command can start, read or create anything then.
import './threads'; // first: sizes libuv's pool before any fs call starts it
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { runTokenServer, USER_USAGE, UsageError, userCommand } from '../auth/cli';
import { ConfigError, maskSecrets, readConfig, type Config } from './config';
import { createLogger } from './log';
import { cmdImages, cmdLs, cmdRm } from '../admin/cli';
import { cmdDu, cmdGc, cmdVerify } from './maintenance';
import { preflight } from './preflight';
import { serve } from './serve';

export interface Command {
  /** One line in `berth --help`. */
  summary: string;
  /** The full usage, printed for --help/-h (exit 0) and after a usage error (exit 2). */
  usage: string;
  run(args: string[]): void | Promise<void>;
}

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

function configError(e: ConfigError): never {
  const list = e.errors.length > 1 ? `${e.errors.length} errors:\n${e.errors.map((m) => `  - ${m}`).join('\n')}` : e.message;
  process.stderr.write(`berth: configuration error: ${list}\n`);
  process.exit(2);
}

/** Load the config (and, with `check`, everything serve checks before it starts) or exit 2 listing every error. */
export function loadOrExit(file: string | undefined, opts: { check?: boolean; warn?: (w: string) => void } = {}): Config {
  const warn = opts.warn ?? ((w: string) => process.stderr.write(`berth: warning: ${w}\n`));
  try {
    const { config, warnings, errors } = readConfig(file);
    const checked = opts.check ? preflight(config) : { errors: [], warnings: [] };
    for (const w of [...warnings, ...checked.warnings]) warn(w);
    if (errors.length || checked.errors.length) throw new ConfigError([...errors, ...checked.errors]);
    return config;
  } catch (e) {
    if (e instanceof ConfigError) configError(e);
    throw e;
  }
}

async function cmdServe(args: string[]): Promise<void> {
  const file = configArg(args);
  // Warnings go to the log once it exists: JSON lines like everything serve prints.
  const warnings: string[] = [];
  const config = loadOrExit(file, { check: true, warn: (w) => warnings.push(w) });
  const logger = createLogger(config.log.level, { service: 'berth', ...config.log.fields });
  for (const w of warnings) logger.warn('configuration', { warning: w });
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
  if (args[0] !== 'check') throw new UsageError(args[0] ? `unknown config command "${args[0]}"` : 'config needs a command (check)');
  const file = configArg(args.slice(1));
  const config = loadOrExit(file, { check: true });
  process.stdout.write(`# ${file ?? '(no file: defaults and REGISTRY_* variables)'}: valid\n${YAML.stringify(maskSecrets(config))}`);
}

async function cmdTokenServer(args: string[]): Promise<void> {
  const config = loadOrExit(configArg(args), { check: true });
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
  if (!usersFile) throw new UsageError('name the users file: --config FILE (its tokenserver.users) or --users FILE');
  await userCommand(args, usersFile);
}

/** Maintenance commands return an exit code; bad flags are usage errors (exit 2). */
const maintenance = (cmd: (args: string[], load: (file: string | undefined) => Config) => Promise<number>) => async (args: string[]) => {
  let code: number;
  try {
    code = await cmd(args, (file) => loadOrExit(file));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    throw new UsageError(e.message);
  }
  // Exit once stdout is flushed: a pipe is asynchronous, and a JSON report can be large.
  process.stdout.write('', () => process.exit(code));
};

const CONFIG_HELP = `Without a file, the defaults apply (port 5000, a filesystem store in ./data);
BERTH_CONFIG may name the file instead. The file is CNCF distribution's config.yml
format, and every key can be overridden as REGISTRY_<PATH>_<KEY>
(e.g. REGISTRY_STORAGE_DELETE_ENABLED=true).`;

/** Every sub-command. A new one is an entry here: --help and the command list come with it. */
export const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the registry (and the token service, with a tokenserver section)',
    usage: `usage: berth serve [--config FILE | FILE]

Run the registry until SIGTERM or SIGINT, then drain and exit 0.
${CONFIG_HELP}
`,
    run: cmdServe,
  },
  config: {
    summary: 'check a config as serve would, and print the effective settings',
    usage: `usage: berth config check [--config FILE | FILE]

Check a config as serve does before it starts: every key, addresses and
durations, and the files it names (TLS certificate and key, htpasswd, token
key, users, access policy). Every error is listed at once (exit 2); a valid
config prints its effective settings, secrets masked, in the config's own
syntax (exit 0).
${CONFIG_HELP}
`,
    run: cmdConfig,
  },
  'token-server': {
    summary: "run only the token service (the config's tokenserver section)",
    usage: `usage: berth token-server [--config FILE | FILE]

Run the token service alone on tokenserver.addr (default :5001), for
registries in other processes (their auth.token points at it).
`,
    run: cmdTokenServer,
  },
  user: {
    summary: "add a user, change a password, remove a user (the token service's users file)",
    usage: USER_USAGE,
    run: cmdUser,
  },
  gc: {
    summary: 'collect garbage while the registry runs',
    usage: `usage: berth gc [--config FILE] [--dry-run] [--delete-untagged] [--min-age DURATION] [--json]

Remove what no tag reaches (storage/GC.md), safely while registries serve the
store. Nothing younger than --min-age (default berth.gc.minage, 1h) is removed;
the summary says what that held back.
  --dry-run          list what would be removed, remove nothing
  --delete-untagged  also remove manifests no tag reaches
  --json             the full report as JSON on stdout
Exit 3: another collector holds the lease.
`,
    run: maintenance(cmdGc),
  },
  verify: {
    summary: 're-hash every blob, check every link',
    usage: `usage: berth verify [--config FILE] [--repair] [--json]

Re-hash every blob and check every tag, manifest and layer link, reporting by
repository and image. Exit 1 when anything is wrong (after --repair: when
anything is left that needs a re-push).
  --repair  remove corrupt blobs and links to missing content, re-link blobs
            that are back in the store; list the images to push again
  --json    the full report as JSON on stdout
`,
    run: maintenance(cmdVerify),
  },
  du: {
    summary: 'bytes as clients see them against bytes stored, per repository',
    usage: `usage: berth du [--config FILE] [--json]

Per repository: its tagged images as clients see them (LOGICAL) and the bytes
only it uses, which deleting it would free (UNIQUE). Stored bytes are the sum
of UNIQUE, the bytes shared by two or more repositories, and unreferenced
bytes (no repository uses them: gc removes them).
  --json  the figures as JSON on stdout
`,
    run: maintenance(cmdDu),
  },
  ls: {
    summary: 'repositories with sizes, tag counts and last push; or one repository\'s tags',
    usage: `usage: berth ls [--config FILE] [--sort name|pushed|size|unique] [--json]
       berth ls [--config FILE] [--json] REPO

Without REPO: every repository with its tag and image counts, last push, the
bytes its tagged images add up to (LOGICAL) and the bytes only it uses
(UNIQUE); --sort orders by name (default) or, largest or newest first, by
last push, logical or unique bytes.
With REPO: its tags with digest, kind, platforms, size, when and by whom each
was pushed ("-" where the store does not know: pushed before berth).
  --json  the rows as JSON on stdout (the admin API's fields)
`,
    run: maintenance(cmdLs),
  },
  rm: {
    summary: 'remove a tag, an image or a whole repository',
    usage: `usage: berth rm [--config FILE] [--yes] [--json] REPO:TAG | REPO@DIGEST
       berth rm [--config FILE] [--yes] [--json] --repository REPO

Say what goes (tags, manifests, images left untagged) and what garbage
collection then frees, ask for confirmation on the terminal, and remove.
Needs storage.delete.enabled. A tag's image stays, untagged; an image goes
with every tag pointing at it. Registries serving the store follow.
  --yes   remove without asking (required when stdin is not a terminal)
  --json  what was removed, as JSON on stdout
Exit 1: answered no, or nothing by that name.
`,
    run: maintenance(cmdRm),
  },
  images: {
    summary: 'the images (and repositories) that contain a blob',
    usage: `usage: berth images --containing DIGEST [--config FILE] [--json]

Every image that uses the blob (a layer, a config) in each repository, with
its tags. Uses the store's indexes: on a store distribution wrote, start
berth serve on it once or run berth verify --repair first.
  --json  the list as JSON on stdout
Exit 1: no repository uses the blob.
`,
    run: maintenance(cmdImages),
  },
};

function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`);
  return `usage: berth <command> [options]

commands:
${lines.join('\n')}

  berth <command> --help   usage of a command
  berth --version          the version
`;
}

const wantsHelp = (args: string[]) => args.includes('--help') || args.includes('-h');

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  if (name === '--version' || name === 'version') {
    process.stdout.write(`berth ${version()}\n`);
    return;
  }
  const cmd = name === 'help' ? COMMANDS[args[0]] : name ? COMMANDS[name] : undefined;
  if (name === 'help' || (cmd && wantsHelp(args))) {
    process.stdout.write(cmd?.usage ?? mainUsage());
    return;
  }
  if (!cmd) {
    const asked = name === undefined || name === '--help' || name === '-h';
    (asked ? process.stdout : process.stderr).write(asked ? mainUsage() : `berth: unknown command "${name}"\n${mainUsage()}`);
    process.exit(asked ? 0 : 2);
  }
  try {
    await cmd.run(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const hint = e.message.includes('usage:') ? '' : `(berth ${name} --help shows its usage)\n`;
    process.stderr.write(`berth ${name}: ${e.message.trimEnd()}\n${hint}`);
    process.exit(2);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`berth: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
