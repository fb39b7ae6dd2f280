// GET /v2/_catalog: repositories the caller may pull, with n/last paging.
import type { Resource } from '../context';
import { pageParams, setNextLink } from './util';

export const catalog: Resource = {
  async GET(ctx) {
    const { n, last } = pageParams(ctx);
    const mayList = (repo: string) => ctx.state.auth.may('repository', repo, 'pull');
    const page = n === 0 ? { items: [] as string[] } : await ctx.deps.store.catalogPage(last, n, mayList);
    setNextLink(ctx, '/v2/_catalog', n, page.last);
    ctx.type = 'application/json';
    ctx.body = { repositories: page.items };
  },
};
