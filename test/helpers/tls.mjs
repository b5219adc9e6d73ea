// Certificates for the HTTPS tests, made with the openssl command (Debian's `openssl`), and a
// small HTTPS client that trusts only the test's CA. Every certificate is for IP 127.0.0.1 and
// lives one day; keys are P-256 and unencrypted.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A CA named `caName` and a leaf certificate `name` signed by it, written into `dir` as
// <prefix>ca.pem, <prefix>cert.pem and <prefix>key.pem. Returns their paths and the CA's PEM.
export function makeCertificates(dir, { prefix = '', caName = 'pushhook test CA', name = 'pushhook test' } = {}) {
  const file = (n) => path.join(dir, `${prefix}${n}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1',
    '-subj', `/CN=${caName}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign'], dir);
  openssl(['req', ...ec, '-keyout', file('key.pem'), '-out', file('leaf.csr'), '-subj', `/CN=${name}`], dir);
  fs.writeFileSync(file('leaf.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  openssl(['x509', '-req', '-in', file('leaf.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
    '-CAcreateserial', '-out', file('cert.pem'), '-days', '1', '-extfile', file('leaf.ext')], dir);
  return {
    caFile: file('ca.pem'),
    certFile: file('cert.pem'),
    keyFile: file('key.pem'),
    ca: fs.readFileSync(file('ca.pem'), 'utf8'),
  };
}

// One HTTPS request to 127.0.0.1:port trusting only `ca`. `body` is JSON-encoded unless it is a
// string. Resolves to {status, headers, text, json, socket}; rejects on a TLS or socket error.
export function httpsRequest(port, method, urlPath, { ca, body, headers = {}, agent = false, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    let payload = body;
    const h = { ...headers };
    if (body !== undefined && typeof body !== 'string') {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
    const req = https.request({ host: '127.0.0.1', port, method, path: urlPath, ca, agent, headers: h, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json, socket: req.socket, reusedSocket: req.reusedSocket });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// The certificate a fresh TLS connection to 127.0.0.1:port is served (verified against `ca`).
export function peerCertificate(port, ca) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}
