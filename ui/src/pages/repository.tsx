// One repository: its figures and its tags (digest, kind, platforms, size,
// who pushed when, attached signatures/SBOMs), pull commands to copy, and
// deletes for those allowed to.
import { useEffect, useState } from 'preact/hooks';
import { get, query, type ReferrerCounts, type Repo, repoPath, type Tag } from '../api';
import { Badge, Copy, CopyIcon, ErrorBox, Loading, PageTitle, PullCommand, Time, useApi } from '../components';
import { bytes, count, platform, shortDigest } from '../format';
import { imageHref, navigate } from '../router';
import { useSession } from '../session';
import { DeleteDialog, type DeleteTarget } from './delete';
import { UpstreamBadge } from './repositories';

const LABELS: [keyof ReferrerCounts, string, string][] = [
  ['signatures', 'signed', 'signature'],
  ['sboms', 'SBOM', 'SBOM'],
  ['attestations', 'attested', 'attestation'],
  ['other', 'artifacts', 'other artifact'],
];

export function ReferrerBadges({ counts }: { counts: ReferrerCounts }) {
  return (
    <>
      {LABELS.filter(([k]) => counts[k] > 0).map(([k, label, one]) => (
        <Badge key={k} tone={k === 'signatures' ? 'good' : 'info'} title={count(counts[k], one)}>
          {label}
          {counts[k] > 1 ? ` ×${counts[k]}` : ''}
        </Badge>
      ))}
    </>
  );
}

export const KindBadge = ({ kind, artifactType }: { kind: Tag['kind']; artifactType?: string }) => (
  <Badge tone={kind === 'index' ? 'info' : 'plain'} title={artifactType}>
    {kind === 'index' ? 'multi-arch' : kind}
  </Badge>
);

/** Tags in name order, a page at a time ("Show more" fetches the next one). */
function useTags(name: string) {
  const [tags, setTags] = useState<Tag[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [more, setMore] = useState(false);
  const first = useApi<{ tags: Tag[]; next?: string }>(`/repositories/${repoPath(name)}/_tags${query({ limit: 100 })}`);
  useEffect(() => {
    if (first.data) {
      setTags(first.data.tags);
      setNext(first.data.next);
    }
  }, [first.data]);
  const loadMore = async () => {
    if (!next) return;
    setMore(true);
    try {
      const page = await get<{ tags: Tag[]; next?: string }>(`/repositories/${repoPath(name)}/_tags${query({ limit: 100, cursor: next })}`);
      setTags((t) => [...t, ...page.tags]);
      setNext(page.next);
    } finally {
      setMore(false);
    }
  };
  return { tags, next, loading: !first.data && !first.error, error: first.error, loadMore, more, reload: first.reload };
}

export function RepositoryPage({ name }: { name: string }) {
  const { session } = useSession();
  const repo = useApi<Repo>(`/repositories/${repoPath(name)}`);
  const t = useTags(name);
  const [deleting, setDeleting] = useState<DeleteTarget>();
  const [notice, setNotice] = useState('');
  const host = session?.host ?? location.host;
  const r = repo.data;

  const crumbs = (
    <nav class="crumbs" aria-label="Breadcrumb">
      <a href="/">Repositories</a> <span aria-hidden="true">/</span> <span aria-current="page">{name}</span>
    </nav>
  );
  if (repo.error) {
    return (
      <>
        {crumbs}
        <PageTitle title={name} />
        <ErrorBox error={repo.error} what="repository" />
      </>
    );
  }
  return (
    <>
      {crumbs}
      <div class="page-head">
        <PageTitle title={name}>
          {name} {r && <UpstreamBadge repo={r} />}
        </PageTitle>
        {r?.deletable && (
          <button type="button" class="danger subtle" onClick={() => setDeleting({ kind: 'repository' })}>
            Delete repository
          </button>
        )}
      </div>
      {!r && <Loading what="repository" />}
      {r && (
        <dl class="stats">
          <div>
            <dt>Tags</dt>
            <dd>{r.tags.toLocaleString('en')}</dd>
          </div>
          <div>
            <dt>Images</dt>
            <dd>{r.images.toLocaleString('en')}</dd>
          </div>
          <div>
            <dt>Last push</dt>
            <dd>
              <Time iso={r.lastPush} />
            </dd>
          </div>
          <div>
            <dt>Size</dt>
            <dd>{bytes(r.logicalBytes)}</dd>
          </div>
          <div>
            <dt title="Bytes no other repository uses: what deleting this one frees">Unique</dt>
            <dd>{bytes(r.uniqueBytes)}</dd>
          </div>
        </dl>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <h2>Tags</h2>
      {t.error && <ErrorBox error={t.error} what="repository" />}
      {t.loading && <Loading what="tags" />}
      {!t.loading && !t.error && t.tags.length === 0 && <p class="empty">No tags. Untagged images stay until garbage collection removes them.</p>}
      {t.tags.length > 0 && (
        <table class="data tags">
          <caption class="offscreen">Tags of {name}</caption>
          <thead>
            <tr>
              <th scope="col">Tag</th>
              <th scope="col">Digest</th>
              <th scope="col">Kind</th>
              <th scope="col" class="num">Size</th>
              <th scope="col">Pushed</th>
              <th scope="col">
                <span class="offscreen">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {t.tags.map((tag) => (
              <tr key={tag.name}>
                <th scope="row" class="name">
                  <a href={imageHref(name, tag.digest)}>{tag.name}</a> <ReferrerBadges counts={tag.referrers} />
                </th>
                <td data-label="Digest">
                  <code class="digest" title={tag.digest}>
                    {shortDigest(tag.digest)}
                  </code>
                </td>
                <td data-label="Kind">
                  <KindBadge kind={tag.kind} artifactType={tag.artifactType} />
                  {tag.platforms.length > 0 && <span class="platforms">{tag.platforms.map(platform).join(', ')}</span>}
                </td>
                <td class="num" data-label="Size">
                  {bytes(tag.size)}
                </td>
                <td data-label="Pushed">
                  <Time iso={tag.pushedAt} />
                  {tag.pushedBy && <span class="by"> by {tag.pushedBy}</span>}
                </td>
                <td class="actions">
                  <Copy text={`docker pull ${host}/${name}:${tag.name}`} label={`Copy docker pull ${host}/${name}:${tag.name}`}>
                    <CopyIcon /> pull
                  </Copy>
                  <Copy text={`docker pull ${host}/${name}@${tag.digest}`} label={`Copy docker pull by @digest: ${host}/${name}@${tag.digest}`}>
                    <CopyIcon /> @digest
                  </Copy>
                  {r?.deletable && (
                    <button type="button" class="danger subtle" aria-label={`Delete tag ${tag.name}`} onClick={() => setDeleting({ kind: 'tag', tag: tag.name })}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {t.next && (
        <button type="button" class="more" disabled={t.more} onClick={() => void t.loadMore()}>
          {t.more ? 'Loading…' : 'Show more tags'}
        </button>
      )}
      {r && t.tags.length > 0 && (
        <section class="howto">
          <h2>Pull</h2>
          <PullCommand reference={`${host}/${name}:${t.tags[0].name}`} />
        </section>
      )}
      {deleting && (
        <DeleteDialog
          repository={name}
          target={deleting}
          onClose={() => setDeleting(undefined)}
          onDeleted={(what) => {
            setDeleting(undefined);
            if (deleting.kind === 'repository') return navigate('/');
            setNotice(`Deleted ${what}.`);
            repo.reload();
            t.reload();
          }}
        />
      )}
    </>
  );
}
