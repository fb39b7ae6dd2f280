// Pull-through cache configuration: distribution's `proxy:` and berth's
// `berth.proxies`, environment overrides, masked secrets, clear errors.
import t from 'tap';
import { ConfigError, fromObject, maskSecrets } from '../server/config';
import { Entries, entriesFrom } from '../proxy/entries';

t.test("distribution's proxy section makes the whole registry a mirror", async (t) => {
  const { config, warnings } = fromObject({ proxy: { remoteurl: 'https://registry-1.docker.io', username: 'u', password: 'p', ttl: '168h' } }, {});
  t.same(warnings, []);
  t.match(config.proxy, { remoteurl: 'https://registry-1.docker.io', username: 'u', password: 'p', ttl: 168 * 3600_000, expire: 168 * 3600_000, maxsize: 0 });
  t.match(maskSecrets(config), { proxy: { password: '********', username: 'u' } }, 'the password is masked');
  const entries = new Entries(entriesFrom(config));
  t.match(entries.target('library/alpine', undefined), { local: 'library/alpine', remote: 'library/alpine', fallback: false }, 'every name, as it is');
  t.match(entries.byName('team/app'), { prefix: '', remoteurl: 'https://registry-1.docker.io' });
  t.equal(fromObject({}, {}).config.proxy, undefined, 'absent unless configured');
  const env = fromObject({}, { REGISTRY_PROXY_REMOTEURL: 'http://10.0.0.1:5000', REGISTRY_PROXY_PASSWORD: 'x' }).config;
  t.match(env.proxy, { remoteurl: 'http://10.0.0.1:5000', password: 'x', ttl: 600_000 }, 'REGISTRY_PROXY_* overrides, defaults filled in');
});

t.test("berth's proxies: several upstreams beside hosted repositories", async (t) => {
  const { config } = fromObject(
    {
      berth: {
        proxies: [
          { prefix: 'dockerhub', remoteurl: 'https://registry-1.docker.io', ns: 'docker.io', username: 'me', password: 'secret', ttl: '10m', expire: '720h', maxsize: 1 << 30 },
          { prefix: 'ghcr', remoteurl: 'https://ghcr.io', ns: 'ghcr.io' },
        ],
      },
    },
    {},
  );
  t.match(maskSecrets(config), { berth: { proxies: [{ password: '********' }, {}] } });
  const entries = new Entries(entriesFrom(config));
  t.match(entries.target('dockerhub/library/alpine', undefined), { entry: { prefix: 'dockerhub' }, local: 'dockerhub/library/alpine', remote: 'library/alpine', fallback: false });
  t.match(entries.target('dockerhub/alpine', undefined), { local: 'dockerhub/library/alpine', remote: 'library/alpine' }, "Docker Hub's official images");
  t.match(entries.target('library/alpine', 'docker.io'), { local: 'dockerhub/library/alpine', fallback: false }, "containerd's ?ns=docker.io");
  t.match(entries.target('owner/tool', 'ghcr.io'), { local: 'ghcr/owner/tool', remote: 'owner/tool' }, '?ns=ghcr.io');
  t.match(entries.target('library/alpine', undefined), { local: 'dockerhub/library/alpine', fallback: true }, "docker's registry-mirrors: after hosted content");
  t.equal(entries.target('library/alpine', 'quay.io'), undefined, 'an ns no entry serves: hosted');
  t.equal(entries.byName('team/app'), undefined, 'outside every prefix: hosted');
  t.equal(entries.byName('ghcrx/app'), undefined, 'prefixes match whole components');
  t.match(entries.byName('ghcr/owner/tool'), { prefix: 'ghcr', remoteurl: 'https://ghcr.io' });
});

t.test('mistakes are reported clearly', async (t) => {
  const bad = (raw: Record<string, unknown>, re: RegExp) => t.throws(() => fromObject(raw, {}), { name: ConfigError.name, message: re });
  bad({ proxy: { username: 'u' } }, /proxy.remoteurl must be an http\(s\) URL/);
  bad({ proxy: { remoteurl: 'ftp://x' } }, /proxy.remoteurl must be an http\(s\) URL/);
  bad({ proxy: { remoteurl: 'https://x', bogus: 1 } }, /unknown configuration key "proxy.bogus"/);
  bad({ berth: { proxies: [{ remoteurl: 'https://x' }] } }, /berth.proxies\[0\].prefix must be a repository name/);
  bad({ berth: { proxies: [{ prefix: 'Hub', remoteurl: 'https://x' }] } }, /prefix must be a repository name/);
  bad({ berth: { proxies: [{ prefix: 'a', remoteurl: 'https://x' }, { prefix: 'a/b', remoteurl: 'https://y' }] } }, /berth.proxies\[1\].prefix "a\/b" overlaps berth.proxies\[0\]'s "a"/);
  bad({ berth: { proxies: [{ prefix: 'a', remoteurl: 'https://x', ns: 'docker.io' }, { prefix: 'b', remoteurl: 'https://y', ns: 'docker.io' }] } }, /ns "docker.io" is used twice/);
  bad({ proxy: { remoteurl: 'https://x' }, berth: { proxies: [{ prefix: 'a', remoteurl: 'https://y' }] } }, /use berth.proxies alone/);
});
