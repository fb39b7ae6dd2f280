// Where the bytes are: stored against logical (what clients would download),
// the dedup ratio, the repositories that hold the most bytes of their own, and
// the layers shared most widely. Charts are SVG drawn here; nothing external.
import type { Usage } from '../api';
import { Bar, ErrorBox, Loading, PageTitle, Time, useApi } from '../components';
import { bytes, count, ratio, shortDigest } from '../format';
import { repoHref } from '../router';

/** Logical bytes as one bar, stored bytes as the part of it the disk really holds. */
function DedupChart({ stored, logical }: { stored: number; logical: number }) {
  const max = Math.max(logical, stored, 1);
  return (
    <figure class="dedup">
      <svg viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label={`Stored ${bytes(stored)} of ${bytes(logical)} logical`}>
        <rect class="logical" width="100" height="24" rx="3" />
        <rect class="stored" width={(100 * stored) / max} height="24" rx="3" />
      </svg>
      <figcaption>
        <span class="key stored-key" aria-hidden="true" /> stored on disk {bytes(stored)} <span class="key logical-key" aria-hidden="true" /> saved by sharing{' '}
        {bytes(Math.max(0, logical - stored))}
      </figcaption>
    </figure>
  );
}

function Card({ label, value, note, accent }: { label: string; value: string; note: string; accent?: boolean }) {
  return (
    <div class={accent ? 'card accent' : 'card'}>
      <span class="label">{label}</span>
      <strong>{value}</strong>
      <span class="muted">{note}</span>
    </div>
  );
}

export function StoragePage() {
  const { data: u, error } = useApi<Usage>('/usage');
  const storeWide = u && u.storedBytes !== null;
  return (
    <>
      <div class="page-head">
        <PageTitle title="Storage" />
        {u && (
          <p class="sub">
            Computed <Time iso={u.computedAt} />
          </p>
        )}
      </div>
      {error && <ErrorBox error={error} what="usage" />}
      {!u && !error && <Loading what="usage" />}
      {u && (
        <>
          <div class="cards">
            {storeWide && <Card label="Stored" value={bytes(u.storedBytes!)} note={`${count(u.blobs ?? 0, 'blob')}, each once`} />}
            <Card label="Logical" value={bytes(u.logicalBytes)} note={`what pulling every tag of ${count(u.repositoryCount, 'repository', 'repositories')} would fetch`} />
            {storeWide && <Card label="Dedup ratio" value={ratio(u.dedupRatio ?? 1)} note="logical ÷ stored" accent />}
            {storeWide && u.sharedBytes !== null && <Card label="Shared" value={bytes(u.sharedBytes)} note="in blobs used more than once" />}
            {storeWide && u.unusedBytes !== null && <Card label="Unused" value={bytes(u.unusedBytes)} note="no image uses them: garbage collection frees them" />}
            {!storeWide && <Card label="Unique" value={bytes(u.uniqueBytes)} note="used by none but these repositories" />}
          </div>
          {storeWide ? (
            <DedupChart stored={u.storedBytes!} logical={u.logicalBytes} />
          ) : (
            <p class="muted small">Store-wide figures (bytes stored, the dedup ratio) need the catalog right; these cover the repositories you may pull.</p>
          )}
          <div class="columns">
            <section>
              <h2>Repositories by unique bytes</h2>
              <p class="muted small">Dark: bytes only that repository uses (what deleting it frees). Light: its logical size.</p>
              {u.repositories.length === 0 ? (
                <p class="empty">No repositories.</p>
              ) : (
                <ol class="chart">
                  {u.repositories.map((r) => (
                    <li key={r.name}>
                      <a href={repoHref(r.name)}>{r.name}</a>
                      <span class="figure">
                        {bytes(r.uniqueBytes)} <span class="muted">of {bytes(r.logicalBytes)}</span>
                      </span>
                      <Bar value={r.uniqueBytes} under={r.logicalBytes} max={Math.max(1, ...u.repositories.map((x) => x.logicalBytes))} />
                    </li>
                  ))}
                </ol>
              )}
            </section>
            <section>
              <h2>Most shared layers</h2>
              <p class="muted small">Stored once, used by every repository and image counted.</p>
              {u.sharedLayers.length === 0 ? (
                <p class="empty">No layer is shared yet.</p>
              ) : (
                <ol class="chart">
                  {u.sharedLayers.map((l) => (
                    <li key={l.digest}>
                      <code class="digest" title={l.digest}>
                        {shortDigest(l.digest)}
                      </code>
                      <span class="figure">
                        {count(l.repositories, 'repository', 'repositories')}, {count(l.images, 'image')} <span class="muted">· {bytes(l.size)}</span>
                      </span>
                      <Bar value={l.repositories} max={Math.max(1, ...u.sharedLayers.map((x) => x.repositories))} />
                    </li>
                  ))}
                </ol>
              )}
            </section>
          </div>
        </>
      )}
    </>
  );
}
