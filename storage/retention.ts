// Retention policies of GC (berth.gc.retention): which repositories a policy
// covers (a name glob) and which tags it always keeps (a whole-tag regex).

export interface RetentionPolicy {
  /** Repository name pattern: '*' matches within a path component, '**' across components. */
  repository: string;
  /** Keep the N most recently pushed tags. */
  keeplatest?: number;
  /** Tags matching this regular expression (whole tag) are always kept. */
  keeptags?: string;
  /** Untagged manifests older than this (ms) are removed, as with --delete-untagged. */
  untaggedage?: number;
}

export function globToRegExp(glob: string): RegExp {
  const re = glob
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${re}$`);
}

export function compilePolicies(policies: RetentionPolicy[] = []) {
  return policies.map((p) => ({ ...p, name: globToRegExp(p.repository), keep: p.keeptags ? new RegExp(`^(?:${p.keeptags})$`) : undefined }));
}
export type CompiledPolicy = ReturnType<typeof compilePolicies>[number];
