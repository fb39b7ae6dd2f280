// GET /v2/<name>/referrers/<digest>: an OCI index of the manifests whose
// subject is <digest>, optionally filtered by artifactType.
import { MediaTypes } from '../../storage/manifest';
import type { Resource } from '../context';

export const referrers: Resource = {
  async GET(ctx) {
    const { name, reference } = ctx.state.route;
    const filter = typeof ctx.query.artifactType === 'string' && ctx.query.artifactType ? ctx.query.artifactType : undefined;
    const manifests = await ctx.deps.store.referrers(name!, reference!, filter);
    if (filter) ctx.set('OCI-Filters-Applied', 'artifactType');
    ctx.type = MediaTypes.ociIndex;
    ctx.body = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
  },
};
