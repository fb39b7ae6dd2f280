// What the registry knows about the caller once auth has passed.
export interface RequestAuth {
  /** The authenticated user (absent for anonymous callers). */
  subject?: string;
  /** Whether the caller may do `action` on the resource (e.g. 'repository', 'a/b', 'pull'). */
  may(type: string, name: string, action: string): boolean;
}

export interface Logger {
  warn(msg: string, fields?: Record<string, unknown>): void;
}
