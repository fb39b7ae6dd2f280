// Progress for long store-wide runs (gc, verify, du): a redrawn bar on a
// terminal; otherwise (CI logs, journald) a line when a phase starts, one
// every few seconds, and the phase's last state when it ends, so every phase
// closes with a line that says how far it got (100% when it finished) and how
// long it took. Figures carry their unit: bytes, or the items counted.
export interface Progress {
  /** unit: 'bytes', or what is counted ('repositories', 'blobs'); items by default. */
  update(phase: string, done: number, total: number, unit?: string): void;
  /** End the last phase (its final line, or clear the bar) before the command's own output. */
  done(): void;
}

const BAR = 30;

interface Phase {
  name: string;
  done: number;
  total: number;
  unit: string;
  startedAt: number;
}

function figures(p: Phase): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const pct = `${Math.floor(frac * 100)}%`;
  if (p.unit === 'bytes') return `${formatBytes(p.done)}/${formatBytes(p.total)} (${pct})`;
  return `${p.done}/${p.total} ${p.unit} (${pct})`;
}

export function createProgress(out: NodeJS.WriteStream = process.stderr, intervalMs = 5000): Progress {
  const tty = Boolean(out.isTTY);
  let cur: Phase | undefined;
  let last = 0;
  let drawn = false;
  const line = (p: Phase, now: number, final: boolean) => {
    out.write(`${new Date(now).toISOString()} ${p.name}: ${figures(p)}${final ? `, done in ${((now - p.startedAt) / 1000).toFixed(1)}s` : ''}\n`);
    last = now;
  };
  const end = (now: number) => {
    if (!cur) return;
    if (tty && drawn) out.write('\r\x1b[K');
    if (!tty) line(cur, now, true);
    drawn = false;
    cur = undefined;
  };
  return {
    update(phase, done, total, unit = 'items') {
      const now = Date.now();
      if (cur?.name !== phase) {
        end(now);
        cur = { name: phase, done, total, unit, startedAt: now };
        last = 0;
      }
      Object.assign(cur, { done, total, unit });
      if (tty) {
        if (now - last < 100 && done < total) return;
        const frac = total > 0 ? Math.min(1, done / total) : 1;
        const filled = Math.round(frac * BAR);
        out.write(`\r\x1b[K${phase.padEnd(20)} [${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${figures(cur)}`);
        drawn = true;
        last = now;
      } else if (now - last >= intervalMs) {
        line(cur, now, false);
      }
    },
    done() {
      end(Date.now());
    },
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
