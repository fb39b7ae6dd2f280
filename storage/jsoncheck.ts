// What JSON.parse lets through silently but a manifest must not hold: bytes
// that are not UTF-8 (decoded to U+FFFD, so the digest names other text than
// a client reads), duplicate keys (each parser may keep a different one) and
// nesting deep enough to hurt a recursive reader. One pass, no recursion.
import { isUtf8 } from 'node:buffer';

/** Deeper than any manifest needs (they nest about 5 levels); Go's decoder allows 10000. */
export const MAX_DEPTH = 128;

// Objects' keys are kept in an array (most objects have a handful), in a Set past this many.
const SMALL_OBJECT = 16;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first problem of `text`, the UTF-8 decoding of `bytes`, which
 * JSON.parse has already accepted; undefined when there is none.
 */
export function jsonProblem(bytes: Buffer, text: string): string | undefined {
  if (!isUtf8(bytes)) return 'not valid UTF-8';
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: (string[] | Set<string> | null)[] = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      i = stringEnd(text, i);
      if (!keyNext) continue;
      keyNext = false;
      const raw = text.slice(start + 1, i);
      const key = raw.includes('\\') ? (JSON.parse(text.slice(start, i + 1)) as string) : raw;
      const top = open.length - 1;
      const keys = open[top]!;
      if (Array.isArray(keys) ? keys.includes(key) : keys.has(key)) return `duplicate key ${JSON.stringify(key)}`;
      if (!Array.isArray(keys)) keys.add(key);
      else if (keys.push(key) > SMALL_OBJECT) open[top] = new Set(keys);
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (open.length === MAX_DEPTH) return `nested deeper than ${MAX_DEPTH} levels`;
      open.push(c === 0x7b ? [] : null);
      keyNext = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
    } else if (c === 0x2c /* , */) {
      keyNext = open[open.length - 1] != null;
    }
  }
  return undefined;
}

/** Index of the quote closing the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = text.indexOf('"', start + 1); ; i = text.indexOf('"', i + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
}
