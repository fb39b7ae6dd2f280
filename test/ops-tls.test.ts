// HTTPS served directly (http.tls.certificate / key), checked by a real client
// that verifies certificates: skopeo --tls-verify=true --cert-dir. Client
// certificates (http.tls.clientcas) too.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startBerth, tempDir } from './helpers/berth';
import { inCI } from './helpers/clients';
import { httpsStatus } from './helpers/process';

const run = promisify(execFile);
// Under CI=true missing tools fail the tests instead of skipping them.
const skip = !['/usr/bin/skopeo', '/usr/bin/umoci', '/usr/bin/openssl'].every((f) => fs.existsSync(f)) && !inCI() && 'skopeo, umoci or openssl missing';

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd });
}

/** An EC key and a certificate for 127.0.0.1, self-signed or signed by ca. */
async function certificate(dir: string, name: string, opts: { ca?: string; client?: boolean } = {}): Promise<void> {
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    opts.client ? 'extendedKeyUsage=clientAuth\n' : 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  await openssl(dir, 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${opts.client ? 'berth-client' : '127.0.0.1'}`);
  const sign = opts.ca ? ['-CA', `${opts.ca}.crt`, '-CAkey', `${opts.ca}.key`, '-CAcreateserial'] : ['-key', `${name}.key`];
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, ...sign, '-days', '1', '-out', `${name}.crt`, '-extfile', ext);
}

async function certificateAuthority(dir: string, name: string): Promise<void> {
  await openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`);
}

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', ['--insecure-policy', ...args], { timeout: 120_000 });
  return stdout;
}

t.test('HTTPS with a self-signed certificate, verified by skopeo', { skip }, async (t) => {
  const dir = tempDir('berth-tls-');
  await certificate(dir, 'server');
  const trust = path.join(dir, 'trust');
  fs.mkdirSync(trust);
  fs.copyFileSync(path.join(dir, 'server.crt'), path.join(trust, 'ca.crt'));

  // A tiny OCI image: one layer holding one file.
  const layout = path.join(dir, 'oci');
  fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello over TLS\n');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:v1`]);
  await run('umoci', ['insert', '--image', `${layout}:v1`, path.join(dir, 'hello.txt'), '/hello.txt']);

  const b = await startBerth({
    env: { REGISTRY_HTTP_TLS_CERTIFICATE: path.join(dir, 'server.crt'), REGISTRY_HTTP_TLS_KEY: path.join(dir, 'server.key') },
    tls: { ca: fs.readFileSync(path.join(dir, 'server.crt')) },
  });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });
  t.match(b.url, /^https:/);

  await skopeo('copy', '--dest-cert-dir', trust, '--dest-tls-verify=true', `oci:${layout}:v1`, `docker://${b.host}/tls/hello:v1`);
  const raw = await skopeo('inspect', '--raw', '--cert-dir', trust, '--tls-verify=true', `docker://${b.host}/tls/hello:v1`);
  t.match(JSON.parse(raw), { schemaVersion: 2, layers: [{ size: Number }] });
  await skopeo('copy', '--src-cert-dir', trust, '--src-tls-verify=true', `docker://${b.host}/tls/hello:v1`, `oci:${path.join(dir, 'back')}:v1`);
  const index = (p: string) => JSON.parse(fs.readFileSync(path.join(p, 'index.json'), 'utf8')).manifests[0].digest;
  t.equal(index(path.join(dir, 'back')), index(layout), 'the image comes back byte for byte (same manifest digest)');

  await t.rejects(skopeo('inspect', '--tls-verify=true', `docker://${b.host}/tls/hello:v1`), /x509|certificate/, 'without the certificate skopeo refuses');
  await t.rejects(fetch(`http://${b.host}/v2/`), 'no plain HTTP on the TLS port');
});

t.test('http.tls.clientcas requires a client certificate from those CAs', { skip }, async (t) => {
  const dir = tempDir('berth-mtls-');
  await certificate(dir, 'server');
  await certificateAuthority(dir, 'clientca');
  await certificate(dir, 'client', { ca: 'clientca', client: true });
  const read = (f: string) => fs.readFileSync(path.join(dir, f));

  const b = await startBerth({
    env: {
      REGISTRY_HTTP_TLS_CERTIFICATE: path.join(dir, 'server.crt'),
      REGISTRY_HTTP_TLS_KEY: path.join(dir, 'server.key'),
      REGISTRY_HTTP_TLS_CLIENTCAS: path.join(dir, 'clientca.crt'),
      REGISTRY_HTTP_TLS_MINIMUMTLS: 'tls1.2',
    },
    tls: { ca: read('server.crt'), cert: read('client.crt'), key: read('client.key') },
  });
  t.teardown(async () => {
    await b.kill();
    fs.rmSync(b.root, { recursive: true, force: true });
  });

  t.equal(await httpsStatus(`${b.url}/v2/`, { ca: read('server.crt'), cert: read('client.crt'), key: read('client.key') }), 200);
  await t.rejects(httpsStatus(`${b.url}/v2/`, { ca: read('server.crt') }), 'no client certificate: refused');
  // A certificate from another CA is refused too.
  await t.rejects(httpsStatus(`${b.url}/v2/`, { ca: read('server.crt'), cert: read('server.crt'), key: read('server.key') }), 'a certificate from another CA: refused');

  const certs = path.join(dir, 'skopeo');
  fs.mkdirSync(certs);
  fs.copyFileSync(path.join(dir, 'server.crt'), path.join(certs, 'ca.crt'));
  await t.rejects(skopeo('inspect', '--cert-dir', certs, `docker://${b.host}/none/such:v1`), /certificate|tls/i, 'skopeo without a client certificate is refused');
  fs.copyFileSync(path.join(dir, 'client.crt'), path.join(certs, 'client.cert'));
  fs.copyFileSync(path.join(dir, 'client.key'), path.join(certs, 'client.key'));
  // Through TLS now: the registry answers, with a registry error for the missing image.
  await t.rejects(skopeo('inspect', '--cert-dir', certs, `docker://${b.host}/none/such:v1`), /manifest unknown/i, 'skopeo with a client certificate reaches the registry');
});
