#!/usr/bin/env node
// Container HEALTHCHECK: exit 0 when the registry in this container answers GET /healthz
// with 200. Uses node itself, since the runtime image may have no curl or wget.
// The address follows the server's own config: REGISTRY_HTTP_ADDR, else http.addr in the
// config file (BERTH_CONFIG or /etc/berth/config.yml), else :5000; HTTPS when a TLS
// certificate is configured. BERTH_HEALTHCHECK_URL overrides all of it.
'use strict';
const fs = require('node:fs');

function fileConfig() {
  const file = process.env.BERTH_CONFIG || '/etc/berth/config.yml';
  try {
    return require('yaml').parse(fs.readFileSync(file, 'utf8')) || {};
  } catch {
    return {};
  }
}

function target() {
  if (process.env.BERTH_HEALTHCHECK_URL) return new URL(process.env.BERTH_HEALTHCHECK_URL);
  const http = fileConfig().http || {};
  const addr = process.env.REGISTRY_HTTP_ADDR || http.addr || ':5000';
  const cut = addr.lastIndexOf(':');
  let host = addr.slice(0, cut).replace(/^\[|\]$/g, '');
  // a wildcard listener is reached on loopback
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const tls = process.env.REGISTRY_HTTP_TLS_CERTIFICATE || (http.tls && http.tls.certificate);
  const url = new URL(`${tls ? 'https' : 'http'}://localhost/healthz`);
  url.hostname = host.includes(':') ? `[${host}]` : host;
  url.port = addr.slice(cut + 1);
  return url;
}

const url = target();
const client = url.protocol === 'https:' ? require('node:https') : require('node:http');
// liveness only: the certificate may be for a public name, so it is not verified here
const req = client.get(url, { timeout: 2500, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  console.error(`healthcheck ${url.href}: ${err.message}`);
  process.exit(1);
});
