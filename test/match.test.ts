// The /v2 path matcher against the spec's repository name grammar.
import t from 'tap';
import { matchRoute } from '../server/routes/match';
import { isValidName, isValidTag } from '../storage/names';

const D = 'sha256:' + 'a'.repeat(64);

t.test('fixed routes', async (t) => {
  t.same(matchRoute('/v2/'), { kind: 'base' });
  t.same(matchRoute('/v2'), { kind: 'base' });
  t.same(matchRoute('/v2/_catalog'), { kind: 'catalog' });
  t.equal(matchRoute('/v3/'), undefined);
  t.equal(matchRoute('/v2/foo'), undefined);
});

t.test('names with slashes and route words', async (t) => {
  t.same(matchRoute(`/v2/a/b/c/blobs/${D}`), { kind: 'blob', name: 'a/b/c', reference: D });
  t.same(matchRoute('/v2/library/ubuntu/manifests/latest'), { kind: 'manifest', name: 'library/ubuntu', reference: 'latest' });
  t.same(matchRoute('/v2/x/blobs/uploads/'), { kind: 'upload', name: 'x', reference: '' });
  t.same(matchRoute('/v2/x/y/blobs/uploads/1234'), { kind: 'upload', name: 'x/y', reference: '1234' });
  t.same(matchRoute('/v2/x/tags/list'), { kind: 'tags', name: 'x' });
  t.same(matchRoute(`/v2/x/referrers/${D}`), { kind: 'referrers', name: 'x', reference: D });
  // Names may contain route words as components.
  t.same(matchRoute('/v2/foo/blobs/bar/manifests/v1'), { kind: 'manifest', name: 'foo/blobs/bar', reference: 'v1' });
  t.same(matchRoute('/v2/tags/list/tags/list'), { kind: 'tags', name: 'tags/list' });
  t.same(matchRoute('/v2/manifests/manifests/x'), { kind: 'manifest', name: 'manifests', reference: 'x' });
});

t.test('name grammar', async (t) => {
  for (const ok of ['a', 'a/b', 'a-b/c_d', 'a__b', 'a.b', 'a---b', '0', 'x'.repeat(255)]) t.ok(isValidName(ok), ok);
  for (const bad of ['', 'A', 'UPPER', 'a//b', '../x', 'a/', '/a', '-a', 'a-', 'a_', 'a___b', 'a..b', 'x'.repeat(256), 'a b']) {
    t.notOk(isValidName(bad), JSON.stringify(bad));
  }
  for (const ok of ['latest', 'v1.0', '_x', 'A'.repeat(128)]) t.ok(isValidTag(ok), ok);
  for (const bad of ['', '.x', '-x', 'a'.repeat(129), 'a/b', 'a:b']) t.notOk(isValidTag(bad), bad);
});
