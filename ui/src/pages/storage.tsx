// Where the bytes are: stored against logical (what clients would download),
// the dedup ratio, the repositories that hold the most bytes of their own, and
// the layers shared most widely. Charts are SVG drawn here; nothing external.
import type { Usage } from '../api';
import { Bar, ErrorBox, Loading, PageTitle, Time, useApi } from '../components';
import { bytes, count, ratio, shortDigest } from '../format';
import { repoHref } from '../router';

/** Logical bytes as one bar, stored bytes as the part of it the disk really holds. */
function DedupChart({ u }: { u: Usage }) {
  const saved = Math.max(0, u.logicalBytes - u.storedBytes);
  const max = Math.max(u.logicalBytes, u.storedBytes, 1);
  return (
    <figure class="dedup">
      <svg viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label={`Stored ${bytes(u.storedBytes)} of ${bytes(u.logicalBytes)} logical`}>
        <rect class="logical" width="100" height="24" rx="3" />
        <rect class="stored" width={(100 * u.storedBytes) / max} height="24" rx="3" />
      </svg>
      <figcaption>
        <span class="key stored-key" aria-hidden="true" /> stored on disk {bytes(u.storedBytes)} <span class="key logical-key" aria-hidden="true" /> saved by
        sharing {bytes(saved)}
      </figcaption>
    </figure>
  );
}

export function StoragePage() {
  const { data: u, error } = useApi<Usage>('/usage');
  const repos = (u?.repositories ?? []).map((r) => ({ ...r, name: r.name ?? r.repository ?? '' })).sort((a, b) => b.uniqueBytes - a.uniqueBytes).slice(0, 20);
  const layers = u?.sharedLayers ?? [];
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
            <div class="card">
              <span class="label">Stored</span>
              <strong>{bytes(u.storedBytes)}</strong>
              <span class="muted">{count(u.blobs, 'blob')}, each once</span>
            </div>
            <div class="card">
              <span class="label">Logical</span>
              <strong>{bytes(u.logicalBytes)}</strong>
              <span class="muted">what pulling every tag would fetch</span>
            </div>
            <div class="card accent">
              <span class="label">Dedup ratio</span>
              <strong>{ratio(u.dedupRatio)}</strong>
              <span class="muted">logical ÷ stored</span>
            </div>
            {u.sharedBytes !== undefined && (
              <div class="card">
                <span class="label">Shared</span>
                <strong>{bytes(u.sharedBytes)}</strong>
                <span class="muted">in blobs used more than once</span>
              </div>
            )}
          </div>
          <DedupChart u={u} />
          <div class="columns">
            <section>
              <h2>Repositories by unique bytes</h2>
              <p class="muted small">Dark: bytes only that repository uses (what deleting it frees). Light: its logical size.</p>
              {repos.length === 0 ? (
                <p class="empty">No repositories.</p>
              ) : (
                <ol class="chart">
                  {repos.map((r) => (
                    <li key={r.name}>
                      <a href={repoHref(r.name)}>{r.name}</a>
                      <span class="figure">
                        {bytes(r.uniqueBytes)} <span class="muted">of {bytes(r.logicalBytes)}</span>
                      </span>
                      <Bar value={r.uniqueBytes} under={r.logicalBytes} max={Math.max(1, ...repos.map((x) => x.logicalBytes))} />
                    </li>
                  ))}
                </ol>
              )}
            </section>
            <section>
              <h2>Most shared layers</h2>
              <p class="muted small">Stored once, used by every repository and image listed.</p>
              {layers.length === 0 ? (
                <p class="empty">No layer is shared yet.</p>
              ) : (
                <ol class="chart">
                  {layers.map((l) => (
                    <li key={l.digest}>
                      <code class="digest" title={l.digest}>
                        {shortDigest(l.digest)}
                      </code>
                      <span class="figure">
                        {count(l.repositories, 'repository', 'repositories')}, {count(l.images, 'image')} <span class="muted">· {bytes(l.size)}</span>
                      </span>
                      <Bar value={l.repositories} max={Math.max(1, ...layers.map((x) => x.repositories))} />
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
