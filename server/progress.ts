// Progress for long store-wide runs (gc, verify, du): a redrawn bar on a
// terminal, a line every few seconds otherwise (CI logs, journald).
export interface Progress {
  update(phase: string, done: number, total: number): void;
  /** Clear the bar before the final output. */
  done(): void;
}

const BAR = 30;

export function createProgress(out: NodeJS.WriteStream = process.stderr, intervalMs = 5000): Progress {
  const tty = Boolean(out.isTTY);
  let last = 0;
  let lastPhase = '';
  let drawn = false;
  return {
    update(phase, done, total) {
      const now = Date.now();
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      if (tty) {
        if (now - last < 100 && phase === lastPhase && done < total) return;
        const filled = Math.round(frac * BAR);
        out.write(`\r\x1b[K${phase.padEnd(20)} [${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${total}`);
        drawn = true;
      } else {
        if (phase === lastPhase && now - last < intervalMs) return;
        out.write(`${new Date(now).toISOString()} ${phase}: ${done}/${total} (${(frac * 100).toFixed(0)}%)\n`);
      }
      last = now;
      lastPhase = phase;
    },
    done() {
      if (drawn) out.write('\r\x1b[K');
      drawn = false;
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
