// GET /v2/: the API version check clients start with.
import type { Resource } from '../context';

export const base: Resource = {
  async GET(ctx) {
    ctx.type = 'application/json';
    ctx.body = {};
  },
  async HEAD(ctx) {
    ctx.type = 'application/json';
    ctx.length = 2;
    ctx.status = 200;
  },
};
