// Blob bodies sent with sendfile(2) (server/native): exact bytes for whole
// blobs and ranges, keep-alive after such a response, clients that vanish or
// stall mid-transfer, and the streamed path it falls back to.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { addon } from '../server/sendfile';
import { startBerth, tempDir, type Berth } from './helpers/berth';
import { bufferSource, OciClient } from './helpers/oci-client';

const MiB = 1 << 20;

if (!addon) {
  // npm's build prints why; under CI the compiler is installed, so a missing addon is a failure.
  if (process.env.CI === 'true') t.fail('the sendfile addon was not built (see the output of npm run build)');
  else t.comment('NOTICE: the sendfile addon is not built (no C compiler or Node headers): testing the streamed path only');
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** GET through `agent`, returning status, body and whether the connection was reused. */
function get(url: string, agent: http.Agent, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Read `bytes` of a GET, then drop the connection. */
function abandon(url: string, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let seen = 0;
      res.on('data', (b: Buffer) => {
        seen += b.length;
        if (seen >= bytes) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(e)));
  });
}

async function blobServer(t: Test, env: Record<string, string>, blob: Buffer): Promise<{ server: Berth; url: string }> {
  const root = tempDir('berth-sendfile-');
  const server = await startBerth({ root, env });
  t.teardown(() => server.stop());
  const c = new OciClient(server.url);
  t.teardown(() => c.close());
  const { digest } = await c.pushBlob('files/blob', bufferSource(blob));
  return { server, url: `${server.url}/v2/files/blob/blobs/${digest}` };
}

const blob = crypto.randomBytes(24 * MiB + 123);

for (const mode of ['sendfile', 'streamed'] as const) {
  t.test(`blob GETs, ${mode}`, { skip: mode === 'sendfile' && !addon && 'addon not built' }, async (t) => {
    const { server, url } = await blobServer(t, { REGISTRY_BERTH_SENDFILE: String(mode === 'sendfile') }, blob);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());

    const first = await get(url, agent);
    t.equal(first.status, 200);
    t.equal(sha(first.body), sha(blob), 'the whole blob, byte for byte');
    const second = await get(url, agent);
    t.equal(sha(second.body), sha(blob), 'again');
    t.ok(second.reused, 'on the same kept-alive connection');

    const part = await get(url, agent, { Range: 'bytes=1000-2000999' });
    t.equal(part.status, 206);
    t.ok(part.body.equals(blob.subarray(1000, 2001000)), 'a range, byte for byte');
    const tail = await get(url, agent, { Range: 'bytes=-77' });
    t.ok(tail.body.equals(blob.subarray(blob.length - 77)), 'a suffix range');

    // Three pipelined GETs on one connection: the responses come back whole and in order.
    const { pathname, port } = new URL(url);
    const raw = net.connect(Number(port), '127.0.0.1');
    const request = (range: string) => `GET ${pathname} HTTP/1.1\r\nHost: x\r\nRange: bytes=${range}\r\n\r\n`;
    raw.write(request('0-99999') + request('5-9') + request('100-1048675'));
    const received: Buffer[] = [];
    raw.on('data', (b: Buffer) => received.push(b));
    const bodies: Buffer[] = [];
    for (const want of [100000, 5, 1048576]) {
      for (;;) {
        const all = Buffer.concat(received);
        const head = all.indexOf('\r\n\r\n');
        if (head >= 0 && all.length >= head + 4 + want) {
          t.match(all.subarray(0, head).toString(), new RegExp(`^HTTP/1.1 206[^]*content-length: ${want}`, 'i'));
          bodies.push(all.subarray(head + 4, head + 4 + want));
          received.splice(0, received.length, all.subarray(head + 4 + want));
          break;
        }
        await new Promise((r) => raw.once('data', r));
      }
    }
    raw.destroy();
    t.ok(bodies[0].equals(blob.subarray(0, 100000)) && bodies[1].equals(blob.subarray(5, 10)) && bodies[2].equals(blob.subarray(100, 1048676)), 'pipelined ranges, in order, byte for byte');

    // Clients that leave mid-transfer, several at once: the server carries on.
    await Promise.all(Array.from({ length: 6 }, (_, i) => abandon(url, (i + 1) * MiB)));
    const after = await get(url, agent);
    t.equal(sha(after.body), sha(blob), 'served whole after clients dropped out mid-transfer');
    t.equal(server.proc.exitCode, null, 'the server is still running');
  });
}

t.test('the addon on its own: bytes, idle limit, cancel', { skip: !addon && 'addon not built' }, async (t) => {
  const native = addon!;
  const dir = tempDir('berth-sendfile-');
  const file = path.join(dir, 'data');
  fs.writeFileSync(file, blob);
  const fd = fs.openSync(file, 'r');
  t.teardown(() => fs.closeSync(fd));

  // A connected pair: `server` is the side the addon writes to.
  const pair = async () => {
    const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    const server = await accepted;
    t.teardown(() => {
      client.destroy();
      server.destroy();
    });
    return { client, fd: (server as unknown as { _handle: { fd: number } })._handle.fd };
  };
  const listener = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => listener.once('listening', r));
  t.teardown(() => listener.close());
  const send = (sock: number, offset: number, length: number, idleMs: number) => {
    let handle: object;
    const done = new Promise<{ errno: number; sent: number }>((resolve) => {
      handle = native.send(sock, fd, offset, length, idleMs, (errno, sent) => resolve({ errno, sent }));
    });
    return { done, cancel: () => native.cancel(handle) };
  };

  {
    const { client, fd: sock } = await pair();
    const parts: Buffer[] = [];
    client.on('data', (b: Buffer) => parts.push(b));
    const { errno, sent } = await send(sock, 5, 3 * MiB, 0).done;
    t.same({ errno, sent }, { errno: 0, sent: 3 * MiB }, 'a range sent whole');
    while (Buffer.concat(parts).length < 3 * MiB) await new Promise((r) => setTimeout(r, 10));
    t.ok(Buffer.concat(parts).equals(blob.subarray(5, 5 + 3 * MiB)), 'the bytes of that range');
  }
  {
    const { client, fd: sock } = await pair();
    client.pause(); // takes nothing: the socket buffers fill, then the idle limit ends it
    const started = Date.now();
    const { errno, sent } = await send(sock, 0, blob.length, 300).done;
    t.equal(errno, os.constants.errno.ETIMEDOUT, 'a client that takes nothing times out');
    t.ok(sent > 0 && sent < blob.length, `after the buffers filled (${sent} bytes)`);
    t.ok(Date.now() - started < 5000, 'promptly');
  }
  {
    const { client, fd: sock } = await pair();
    client.pause();
    const transfer = send(sock, 0, blob.length, 0);
    setTimeout(transfer.cancel, 200);
    const { errno } = await transfer.done;
    t.not(errno, 0, `a cancelled transfer ends with an error (errno ${errno})`);
  }
  t.throws(() => native.send(-1, fd, 0, 1, 0, () => {}), /non-negative/, 'bad arguments throw');
});
