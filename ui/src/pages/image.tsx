// One image, index or artifact: what it is and how to pull it; for an index
// its platforms; for an image its configuration, build history and layers
// with how widely each is shared (the dedup picture); attached referrers; and
// the raw manifest and config.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { type ImageInfo, type Manifest, type Referrer, type ReferrerKind, type Repo, repoPath } from '../api';
import { Bar, Copy, ErrorBox, Loading, PageTitle, PullCommand, Time, useApi } from '../components';
import { bytes, count, platform, shortDigest } from '../format';
import { imageHref, navigate, repoHref } from '../router';
import { useSession } from '../session';
import { DeleteDialog } from './delete';
import { KindBadge } from './repository';

const REFERRER_GROUPS: [ReferrerKind, string][] = [
  ['signature', 'Signatures'],
  ['sbom', 'SBOMs'],
  ['attestation', 'Attestations'],
  ['other', 'Other artifacts'],
];

const Row = ({ term, children }: { term: string; children: ComponentChildren }) => (
  <div>
    <dt>{term}</dt>
    <dd>{children}</dd>
  </div>
);

const argv = (a?: string[] | null) => (a && a.length ? <code>{JSON.stringify(a)}</code> : <span class="muted">none</span>);

function Overview({ image }: { image: ImageInfo }) {
  return (
    <dl class="facts">
      <Row term="Created">
        <Time iso={image.created} />
      </Row>
      <Row term="Platform">{platform(image)}</Row>
      {image.author && <Row term="Author">{image.author}</Row>}
      <Row term="Entrypoint">{argv(image.entrypoint)}</Row>
      <Row term="Command">{argv(image.cmd)}</Row>
      {image.workingDir && (
        <Row term="Working directory">
          <code>{image.workingDir}</code>
        </Row>
      )}
      {image.user && (
        <Row term="User">
          <code>{image.user}</code>
        </Row>
      )}
      <Row term="Exposed ports">{image.exposedPorts.length ? image.exposedPorts.join(', ') : <span class="muted">none</span>}</Row>
    </dl>
  );
}

interface Containing {
  images: { repository: string; digest: string; tags: string[] }[];
  next?: string;
}

/** Which other images hold a layer, fetched when asked for (GET /blobs/<digest>/images). */
function SharedWith({ layer, name, self }: { layer: ImageInfo['layers'][number]; name: string; self: string }) {
  const [open, setOpen] = useState(false);
  const list = useApi<Containing>(open ? `/blobs/${layer.digest}/images?limit=50` : undefined);
  const label = `shared with ${count(layer.sharedImages, 'other image')} in ${count(layer.sharedRepositories, 'repository', 'repositories')}`;
  const others = list.data?.images.filter((i) => !(i.repository === name && i.digest === self)) ?? [];
  return (
    <>
      <button type="button" class="link shared" aria-expanded={open} onClick={() => setOpen(!open)}>
        {label}
      </button>
      {open && list.error && <ErrorBox error={list.error} what="layer" />}
      {open && list.data && (
        <ul class="containing">
          {others.map((i) => (
            <li key={`${i.repository}@${i.digest}`}>
              <a href={imageHref(i.repository, i.digest)}>
                {i.repository}
                {i.tags.length ? `:${i.tags[0]}` : `@${shortDigest(i.digest)}`}
              </a>
              {i.tags.length > 1 && <span class="muted"> +{i.tags.length - 1} tags</span>}
            </li>
          ))}
          {list.data.next && <li class="muted">and more…</li>}
        </ul>
      )}
    </>
  );
}

function Layers({ image, name, self }: { image: ImageInfo; name: string; self: string }) {
  const max = Math.max(1, ...image.layers.map((l) => l.size));
  const total = image.layers.reduce((n, l) => n + l.size, 0);
  return (
    <table class="data layers">
      <caption class="offscreen">Layers, base first</caption>
      <thead>
        <tr>
          <th scope="col" class="num">#</th>
          <th scope="col">Digest</th>
          <th scope="col" class="num">Size</th>
          <th scope="col">Shared</th>
        </tr>
      </thead>
      <tbody>
        {image.layers.map((l, i) => (
          <tr key={`${i}:${l.digest}`}>
            <td class="num" data-label="Layer">
              {i + 1}
            </td>
            <td data-label="Digest">
              <code class="digest" title={l.digest}>
                {shortDigest(l.digest)}
              </code>
            </td>
            <td class="num size" data-label="Size">
              {bytes(l.size)}
              <Bar value={l.size} max={max} />
            </td>
            <td data-label="Shared" class={l.sharedImages ? undefined : 'muted'}>
              {l.sharedImages ? <SharedWith layer={l} name={name} self={self} /> : 'only this image'}
            </td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <tr>
          <td />
          <th scope="row">{count(image.layers.length, 'layer')}</th>
          <td class="num">{bytes(total)}</td>
          <td />
        </tr>
      </tfoot>
    </table>
  );
}

function Referrers({ name, referrers }: { name: string; referrers: Referrer[] }) {
  return (
    <>
      {REFERRER_GROUPS.map(([kind, title]) => {
        const group = referrers.filter((r) => r.kind === kind);
        if (!group.length) return null;
        return (
          <div key={kind} class="referrers">
            <h3>{title}</h3>
            <ul>
              {group.map((r) => (
                <li key={r.digest}>
                  <a href={imageHref(name, r.digest)}>{r.artifactType ?? r.mediaType}</a> <code class="digest">{shortDigest(r.digest)}</code>{' '}
                  <span class="muted">{bytes(r.size)}</span>
                  {r.annotations?.['org.opencontainers.image.created'] && (
                    <>
                      {' '}
                      · <Time iso={r.annotations['org.opencontainers.image.created']} />
                    </>
                  )}
                </li>
              ))}
            </ul>
          </div>
        );
      })}
    </>
  );
}

function Raw({ title, doc }: { title: string; doc: unknown }) {
  const text = JSON.stringify(doc, null, 2);
  return (
    <details class="raw">
      <summary>{title}</summary>
      <Copy text={text} label={`Copy ${title}`}>
        Copy
      </Copy>
      <pre tabIndex={0}>{text}</pre>
    </details>
  );
}

export function ImagePage({ name, reference }: { name: string; reference: string }) {
  const { session } = useSession();
  const m = useApi<Manifest>(`/repositories/${repoPath(name)}/_manifests/${encodeURIComponent(reference)}`);
  const repo = useApi<Repo>(`/repositories/${repoPath(name)}`);
  const [deleting, setDeleting] = useState(false);
  const host = session?.host ?? location.host;
  const d = m.data;
  const crumbs = (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href="/">Repositories</a> <span aria-hidden="true">/</span> <a href={repoHref(name)}>{name}</a> <span aria-hidden="true">/</span>{' '}
      <span aria-current="page">{reference.includes(':') ? shortDigest(reference) : reference}</span>
    </nav>
  );
  if (m.error) {
    return (
      <>
        {crumbs}
        <PageTitle title={`${name}@${reference}`} />
        <ErrorBox error={m.error} what="image" />
      </>
    );
  }
  if (!d) return (
    <>
      {crumbs}
      <Loading what="image" />
    </>
  );
  const title = d.tags.length ? `${name}:${d.tags[0]}` : `${name}@${shortDigest(d.digest)}`;
  return (
    <>
      {crumbs}
      <div class="page-head">
        <PageTitle title={title}>
          {title} <KindBadge kind={d.kind} artifactType={d.artifactType} />
        </PageTitle>
        {repo.data?.deletable && (
          <button type="button" class="danger subtle" onClick={() => setDeleting(true)}>
            Delete image
          </button>
        )}
      </div>
      <dl class="stats">
        <Row term="Digest">
          <code class="digest">{shortDigest(d.digest)}</code> <Copy text={d.digest} label="Copy digest" />
        </Row>
        <Row term="Size">{bytes(d.size)}</Row>
        <Row term="Tags">{d.tags.length ? d.tags.join(', ') : <span class="muted">untagged</span>}</Row>
        {d.artifactType && (
          <Row term="Artifact type">
            <code>{d.artifactType}</code>
          </Row>
        )}
      </dl>
      {d.subject && (
        <p class="notice">
          Attached to <a href={imageHref(name, d.subject)}>{shortDigest(d.subject)}</a>.
        </p>
      )}
      <PullCommand reference={`${host}/${name}@${d.digest}`} />
      {d.platforms && (
        <section>
          <h2>Platforms</h2>
          <ul class="platform-list">
            {d.platforms.map((p) => (
              <li key={p.digest}>
                <a href={imageHref(name, p.digest)}>{platform(p.platform)}</a> <code class="digest">{shortDigest(p.digest)}</code> <span class="muted">{bytes(p.size)}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      {d.image && (
        <>
          <section>
            <h2>Overview</h2>
            <Overview image={d.image} />
          </section>
          <section>
            <h2>Layers</h2>
            <Layers image={d.image} name={name} self={d.digest} />
          </section>
          {d.image.env.length > 0 && (
            <section>
              <h2>Environment</h2>
              <ul class="mono-list">
                {d.image.env.map((e) => (
                  <li key={e}>
                    <code>{e}</code>
                  </li>
                ))}
              </ul>
            </section>
          )}
          {Object.keys(d.image.labels).length > 0 && (
            <section>
              <h2>Labels</h2>
              <dl class="labels">
                {Object.entries(d.image.labels).map(([k, v]) => (
                  <Row key={k} term={k}>
                    {v}
                  </Row>
                ))}
              </dl>
            </section>
          )}
          <section>
            <h2>History</h2>
            <ol class="history">
              {d.image.history.map((h, i) => (
                <li key={i} class={h.emptyLayer ? 'empty-layer' : undefined}>
                  <code>{h.createdBy ?? h.comment ?? '(no command recorded)'}</code>
                  {h.emptyLayer && <span class="muted"> · no layer</span>}
                </li>
              ))}
            </ol>
          </section>
        </>
      )}
      {d.referrers.length > 0 && (
        <section>
          <h2>Attached ({d.referrers.length})</h2>
          <Referrers name={name} referrers={d.referrers} />
        </section>
      )}
      <section>
        <h2>Raw</h2>
        <Raw title="Manifest JSON" doc={d.manifest} />
        {d.config !== undefined && <Raw title="Config JSON" doc={d.config} />}
      </section>
      {deleting && (
        <DeleteDialog
          repository={name}
          target={{ kind: 'image', digest: d.digest }}
          onClose={() => setDeleting(false)}
          onDeleted={() => navigate(repoHref(name))}
        />
      )}
    </>
  );
}
