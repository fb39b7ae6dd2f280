// Every repository the viewer may pull: filter by name, sort by a column,
// paged by the server (the URL holds filter, sort and page, so a view can be
// shared and Back works).
import { useEffect, useRef, useState } from 'preact/hooks';
import { query, type Repo } from '../api';
import { Badge, Bar, ErrorBox, Loading, PageTitle, Time, useApi } from '../components';
import { bytes, count } from '../format';
import { navigate, repoHref, useLocation } from '../router';
import { loginHref, useSession } from '../session';

type SortKey = 'name' | 'pushed' | 'size' | 'unique';
const PAGE = 50;
/** Newest first and largest first are what people look for; names read A to Z. */
const FIRST_ORDER: Record<SortKey, 'asc' | 'desc'> = { name: 'asc', pushed: 'desc', size: 'desc', unique: 'desc' };

/** Cursors of the pages seen so far, by filter and sort: the API's cursors only go forward. */
const seen = new Map<string, string | undefined>();

interface List {
  repositories: Repo[];
  next?: string;
  total: number;
}

export function UpstreamBadge({ repo }: { repo: Repo }) {
  if (!repo.upstream) return null;
  return (
    <Badge tone="proxy" title={`Pull-through cache of ${repo.upstream.remoteurl}`}>
      proxy · {repo.upstream.remoteurl.replace(/^https?:\/\//, '')}
    </Badge>
  );
}

export function RepositoriesPage() {
  const { search } = useLocation();
  const { session, epoch } = useSession();
  const q = search.get('q') ?? '';
  const sort = (['name', 'pushed', 'size', 'unique'].includes(search.get('sort') ?? '') ? search.get('sort') : 'name') as SortKey;
  const order = search.get('order') === 'desc' || search.get('order') === 'asc' ? search.get('order')! : FIRST_ORDER[sort];
  const cursor = search.get('cursor') ?? undefined;
  const pageNo = Number(search.get('page') ?? '1') || 1;
  // Per identity too: a cursor may encode a name the next user of this tab must not see.
  const view = `${epoch}\0${q}\0${sort}\0${order}`;
  if (pageNo === 1) seen.set(`${view}\0${1}`, undefined);
  else if (cursor) seen.set(`${view}\0${pageNo}`, cursor);
  const prevKey = `${view}\0${pageNo - 1}`;
  const { data, error } = useApi<List>(`/repositories${query({ q, sort, order, limit: PAGE, cursor })}`);
  // Keep the last answer on screen while the next one loads: the table does not jump.
  const [shown, setShown] = useState<List>();
  useEffect(() => void (data && setShown(data)), [data]);

  const go = (params: Record<string, string | number | undefined>, replace = false) =>
    navigate(`/${query({ q, sort, order, ...params })}`, { replace });

  // The filter box updates the URL as one types, in one history entry.
  const [text, setText] = useState(q);
  const timer = useRef<number | undefined>(undefined);
  const onInput = (v: string) => {
    setText(v);
    clearTimeout(timer.current);
    timer.current = window.setTimeout(() => go({ q: v, cursor: undefined, page: undefined }, true), 200);
  };

  const sortBy = (key: SortKey) => go({ sort: key, order: key === sort ? (order === 'asc' ? 'desc' : 'asc') : FIRST_ORDER[key], cursor: undefined, page: undefined });
  const header = (key: SortKey, label: string, cls = '') => (
    <th scope="col" class={cls} aria-sort={sort === key ? (order === 'asc' ? 'ascending' : 'descending') : undefined}>
      <button type="button" class="sort" onClick={() => sortBy(key)}>
        {label}
        <span class="arrow" aria-hidden="true">
          {sort === key ? (order === 'asc' ? '▲' : '▼') : ''}
        </span>
      </button>
    </th>
  );

  const list = shown;
  const maxBytes = Math.max(1, ...(list?.repositories.map((r) => r.logicalBytes) ?? []));
  const first = (pageNo - 1) * PAGE;
  return (
    <>
      <div class="page-head">
        <PageTitle title="Repositories" />
        {list && <p class="sub">{count(list.total, 'repository', 'repositories')}{q ? ` matching “${q}”` : ''}</p>}
      </div>
      <div class="toolbar">
        <label class="filter">
          <span class="label">Filter by name</span>
          <input type="search" value={text} onInput={(e) => onInput(e.currentTarget.value)} placeholder="e.g. team/" autoComplete="off" spellcheck={false} />
        </label>
      </div>
      {error && <ErrorBox error={error} what="repositories" />}
      {!list && !error && <Loading what="repositories" />}
      {list && list.repositories.length === 0 && (
        <div class="empty">
          {q ? (
            <p>No repository you may see matches “{q}”.</p>
          ) : session?.user || session?.auth === 'none' ? (
            <p>
              No repositories yet. Push one with <code>docker push {session.host}/team/app:1.0</code>.
            </p>
          ) : (
            <p>
              Nothing here is public. <a href={loginHref()}>Sign in</a> to see the repositories you may pull.
            </p>
          )}
        </div>
      )}
      {list && list.repositories.length > 0 && (
        <>
          <table class="data repos">
            <caption class="offscreen">Repositories, sorted by {sort === 'pushed' ? 'last push' : sort} ({order === 'asc' ? 'ascending' : 'descending'})</caption>
            <thead>
              <tr>
                {header('name', 'Name')}
                <th scope="col" class="num">Tags</th>
                {header('pushed', 'Last push')}
                {header('size', 'Size', 'num')}
                {header('unique', 'Unique', 'num')}
              </tr>
            </thead>
            <tbody>
              {list.repositories.map((r) => (
                <tr key={r.name}>
                  <th scope="row" class="name">
                    <a href={repoHref(r.name)}>{r.name}</a> <UpstreamBadge repo={r} />
                  </th>
                  <td class="num" data-label="Tags">
                    {r.tags}
                  </td>
                  <td data-label="Last push">
                    <Time iso={r.lastPush} />
                  </td>
                  <td class="num size" data-label="Size">
                    {bytes(r.logicalBytes)}
                    <Bar value={r.uniqueBytes} under={r.logicalBytes} max={maxBytes} />
                  </td>
                  <td class="num" data-label="Unique" title="Bytes only this repository's images use: what deleting it would free">
                    {bytes(r.uniqueBytes)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav class="pager" aria-label="Pages">
            <span class="range">
              {first + 1}–{first + list.repositories.length} of {list.total.toLocaleString('en')}
            </span>
            {(pageNo > 1 || list.next) && (
              <>
                {pageNo > 1 && !seen.has(prevKey) ? (
                  <button type="button" onClick={() => go({ cursor: undefined, page: undefined })}>
                    ← First page
                  </button>
                ) : (
                  <button type="button" disabled={pageNo <= 1} onClick={() => go({ cursor: seen.get(prevKey), page: pageNo - 1 > 1 ? pageNo - 1 : undefined })}>
                    ← Previous
                  </button>
                )}
                <button type="button" disabled={!list.next} onClick={() => go({ cursor: list.next, page: pageNo + 1 })}>
                  Next →
                </button>
              </>
            )}
          </nav>
        </>
      )}
    </>
  );
}
