// GET /v2/<name>/tags/list with n/last paging and a Link header.
import type { Resource } from '../context';
import { pageParams, setNextLink } from './util';

export const tags: Resource = {
  async GET(ctx) {
    const name = ctx.state.route.name!;
    const { n, last } = pageParams(ctx);
    const page = n === 0 ? { items: [] as string[] } : await ctx.deps.store.listTags(name, last, n);
    setNextLink(ctx, `/v2/${name}/tags/list`, n, page.last);
    ctx.type = 'application/json';
    ctx.body = { name, tags: page.items };
  },
};
