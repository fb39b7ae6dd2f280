// Run a berth sub-command as a real process against a filesystem root (or,
// with root undefined, the storage that env or a --config file names).
import { spawn } from 'node:child_process';
import { CLI } from './berth';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], root: string | undefined, env: Record<string, string> = {}, timeoutMs = 120_000, cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, ...(root !== undefined && { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root }), REGISTRY_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface TerminalResult {
  code: number | null;
  /** Everything the terminal showed: prompts, echo (if any) and output. */
  transcript: string;
}

/**
 * Run a berth sub-command on a pseudo-terminal (util-linux `script`), so it sees a TTY
 * on stdin, and type each reply once its prompt has appeared (input typed ahead would be
 * swallowed by the reader of the previous prompt).
 */
export function runCliOnTerminal(args: string[], replies: Array<[prompt: string, reply: string]>, timeoutMs = 30_000): Promise<TerminalResult> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    // -e: exit with the command's status; -q: no "Script started" lines; no typescript file.
    const p = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let transcript = '';
    let seen = 0;
    const pending = [...replies];
    const onData = (b: Buffer) => {
      transcript += b.toString();
      for (let at; pending.length && (at = transcript.indexOf(pending[0][0], seen)) >= 0; ) {
        const [prompt, reply] = pending.shift()!;
        seen = at + prompt.length;
        p.stdin.write(`${reply}\r`);
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, transcript });
    });
  });
}
