// Deleting a tag, an image or a repository: a modal that first asks the
// server what would go and what garbage collection would then free (the
// preview endpoint), and deletes only on an explicit confirmation.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, change, type DeletePreview, query, repoPath } from '../api';
import { ErrorBox, Loading, useApi } from '../components';
import { bytes, count, shortDigest } from '../format';

export type DeleteTarget = { kind: 'tag'; tag: string } | { kind: 'image'; digest: string } | { kind: 'repository' };

function describe(repository: string, t: DeleteTarget): string {
  if (t.kind === 'tag') return `tag ${repository}:${t.tag}`;
  if (t.kind === 'image') return `image ${repository}@${shortDigest(t.digest)}`;
  return `repository ${repository}`;
}

export function DeleteDialog({ repository, target, onClose, onDeleted }: { repository: string; target: DeleteTarget; onClose(): void; onDeleted(what: string): void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const base = `/repositories/${repoPath(repository)}`;
  const preview = useApi<DeletePreview>(
    `${base}/_delete${query(target.kind === 'tag' ? { tag: target.tag } : target.kind === 'image' ? { digest: target.digest } : {})}`,
  );
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<ApiError>();
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const what = describe(repository, target);
  const mustType = target.kind === 'repository';
  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setFailure(undefined);
    try {
      const path = target.kind === 'tag' ? `${base}/_tags/${encodeURIComponent(target.tag)}` : target.kind === 'image' ? `${base}/_manifests/${target.digest}` : base;
      await change('DELETE', path);
      ref.current?.close();
      onDeleted(what);
    } catch (err) {
      setFailure(err as ApiError);
      setBusy(false);
    }
  };
  const p = preview.data;
  return (
    <dialog ref={ref} class="confirm" aria-labelledby="delete-title" onClose={onClose}>
      <form method="dialog" onSubmit={confirm}>
        <h2 id="delete-title">Delete {what}?</h2>
        {preview.error && <ErrorBox error={preview.error} what={target.kind} />}
        {!p && !preview.error && <Loading what="what would be deleted" />}
        {p && (
          <div class="preview">
            <p>This removes:</p>
            <ul>
              <li>
                {count(p.tags.length, 'tag')}
                {p.tags.length > 0 && p.tags.length <= 12 && (
                  <>
                    : <span class="mono">{p.tags.join(', ')}</span>
                  </>
                )}
              </li>
              <li>{count(p.manifests.length, 'image manifest')}</li>
            </ul>
            <p>
              Garbage collection will then free <strong>{bytes(p.freeableBytes)}</strong>
              {p.freeableBytes === 0 ? ' (everything it uses is shared with other images)' : ''}. Until it runs, the space stays in use.
            </p>
            {target.kind === 'tag' && p.manifests.length === 0 && <p class="muted">The image stays, reachable by its digest and its other tags.</p>}
          </div>
        )}
        {mustType && p && (
          <label class="field">
            <span class="label">
              Type <strong class="mono">{repository}</strong> to confirm
            </span>
            <input value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" spellcheck={false} />
          </label>
        )}
        {failure && <ErrorBox error={failure} what={target.kind} />}
        <div class="actions">
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
          <button type="submit" class="danger" disabled={!p || busy || (mustType && typed !== repository)}>
            {busy ? 'Deleting…' : `Delete ${target.kind}`}
          </button>
        </div>
      </form>
    </dialog>
  );
}
