// DESIGN section 8, issue 14 item 5: serving HTTPS itself. `serve` and `receive` take
// --tls-cert/--tls-key (PEM); bad files are refused at start with exit 2 and one line naming the
// file; SIGHUP swaps the certificate for new connections and keeps open ones; plain HTTP on the
// TLS port is told to use https; garbage is hung up on. Certificates come from the test's own CA.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { freePort, itest, makeEvent, randomToken, stop, waitFor } from '../helpers/harness.mjs';
import { httpsRequest, makeCertificates, peerCertificate } from '../helpers/tls.mjs';

// Runs pushhook to completion (killed after 15 s): {code, signal, stderr}.
async function run(fx, args) {
  const handle = fx.spawn(args, { cwd: fx.tempDir('pushhook-tls-run-'), name: `pushhook ${args[0]}` });
  let timer;
  const result = await Promise.race([
    handle.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), 15_000);
    }),
  ]);
  clearTimeout(timer);
  if (!result) {
    await stop(handle, 'SIGKILL');
    assert.fail(`pushhook ${args.join(' ')} still running after 15 s; stderr:\n${handle.stderr}`);
  }
  return { ...result, stderr: handle.stderr };
}

// Exit code 2 and exactly one line on stderr, equal to `line`.
function assertRefused(result, line, what) {
  assert.equal(result.code, 2, `${what}: exit code ${result.code} (signal ${result.signal}); stderr:\n${result.stderr}`);
  assert.deepEqual(result.stderr.trim().split('\n'), [line], `${what}: the one-line reason`);
}

// The API of a serve over HTTPS, trusting `ca`.
function api(serve, ca) {
  return async (method, urlPath, body, headers = {}) =>
    httpsRequest(serve.port, method, urlPath, { ca, body, headers: { authorization: `Bearer ${serve.adminToken}`, ...headers } });
}

itest('serve over HTTPS takes an ingest and delivers it; plain HTTP on its port is told to use https', async (fx) => {
  const dir = fx.tempDir('pushhook-tls-');
  const certs = makeCertificates(dir);
  const rx = await fx.startRecorder();
  const serve = await fx.startServe({ args: ['--tls-cert', certs.certFile, '--tls-key', certs.keyFile] });
  assert.equal(serve.logs.find((l) => l.msg === 'listening')?.tls, true, 'the listening line says tls');
  const call = api(serve, certs.ca);

  const site = (await call('POST', '/v1/sites', { name: 'TLS' })).json;
  assert.ok(site?.ingest_key, 'site created over https');
  const created = await call('POST', `/v1/sites/${site.id}/endpoints`, { url: `${rx.url}/hooks` });
  assert.equal(created.status, 201, created.text);
  const ingest = await httpsRequest(serve.port, 'POST', `/v1/events?key=${site.ingest_key}`, {
    ca: certs.ca,
    body: JSON.stringify(makeEvent(1, { event_id: 'tls-1' })),
    headers: { 'content-type': 'text/plain', origin: 'https://shop.example' },
  });
  assert.equal(ingest.status, 202, ingest.text);
  assert.deepEqual(ingest.json, { accepted: 1, duplicates: 0 });
  assert.equal(ingest.headers['access-control-allow-origin'], '*');
  await waitFor(() => rx.requests.length >= 1, { what: 'the webhook delivered' });
  assert.equal(JSON.parse(rx.requests[0].body).cookie_id, makeEvent(1).cookie_id);

  // Plain HTTP to the TLS port: a 400 that says to use https (with CORS on the ingest route).
  const plain = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: serve.port, method: 'POST', path: `/v1/events?key=${site.ingest_key}`, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end('{}');
  });
  assert.equal(plain.status, 400, plain.text);
  assert.equal(JSON.parse(plain.text).error.code, 'https_required');
  assert.match(JSON.parse(plain.text).error.message, /https:\/\//);
  assert.equal(plain.headers['access-control-allow-origin'], '*');

  // The command-line clients over https: they trust a private CA given with --ca-file, and
  // without it they say what to do.
  const base = `https://127.0.0.1:${serve.port}`;
  const sent = await run(fx, ['send', '--server', base, '--key', site.ingest_key, '--count', '2', '--ca-file', certs.caFile]);
  assert.equal(sent.code, 0, sent.stderr);
  const stats = ['stats', '--server', base, '--site', site.id, '--token', serve.adminToken];
  const trusted = await run(fx, [...stats, '--ca-file', certs.caFile]);
  assert.equal(trusted.code, 0, trusted.stderr);
  const untrusted = await run(fx, stats);
  assert.equal(untrusted.code, 1);
  assert.equal(untrusted.stderr.trim(), `pushhook: cannot reach ${base}: SSL peer certificate or SSH remote key was not OK ` +
    "(the server's certificate is not trusted here: --ca-file names the CA that signed it)");

  // Garbage, and a TLS handshake that breaks off: the connection is closed without a word.
  for (const bytes of [Buffer.from([0, 1, 2, 3, 4, 5]), Buffer.from([0x16, 3, 1, 0, 5, 1, 2])]) {
    const got = await new Promise((resolve) => {
      const chunks = [];
      const socket = net.connect(serve.port, '127.0.0.1', () => socket.end(bytes));
      socket.on('data', (c) => chunks.push(c));
      socket.on('error', () => {});
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    assert.equal(got.toString('latin1').includes('HTTP/'), false, `an HTTP answer to ${bytes.toString('hex')}`);
  }
  const healthy = await httpsRequest(serve.port, 'GET', '/healthz', { ca: certs.ca });
  assert.equal(healthy.status, 200, 'still serving after the garbage');
  assert.equal(serve.proc.exitCode, null, 'still running');
});

itest('SIGHUP swaps the certificate: new connections get the new one, an open connection keeps working', async (fx) => {
  const dir = fx.tempDir('pushhook-tls-');
  const one = makeCertificates(dir, { prefix: 'one-', caName: 'CA one', name: 'cert one' });
  const two = makeCertificates(dir, { prefix: 'two-', caName: 'CA two', name: 'cert two' });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  fs.copyFileSync(one.certFile, certFile);
  fs.copyFileSync(one.keyFile, keyFile);
  const serve = await fx.startServe({ args: ['--tls-cert', certFile, '--tls-key', keyFile] });
  assert.equal((await peerCertificate(serve.port, one.ca)).subject.CN, 'cert one');

  // A keep-alive connection, open across the reload.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const before = await httpsRequest(serve.port, 'GET', '/healthz', { ca: one.ca, agent });
  assert.equal(before.status, 200);

  fs.copyFileSync(two.certFile, certFile);
  fs.copyFileSync(two.keyFile, keyFile);
  const reloads = () => serve.logs.filter((l) => l.msg === 'TLS certificate reloaded').length;
  serve.proc.kill('SIGHUP');
  await waitFor(() => reloads() === 1, { what: 'the "TLS certificate reloaded" log line' });
  assert.equal((await peerCertificate(serve.port, two.ca)).subject.CN, 'cert two', 'a new connection after SIGHUP');
  await assert.rejects(peerCertificate(serve.port, one.ca), /self[- ]signed|unable to verify|unable to get/i,
    'a client of the old CA refuses the new certificate');

  const after = await httpsRequest(serve.port, 'GET', '/healthz', { ca: one.ca, agent });
  assert.equal(after.status, 200, 'the open connection still works');
  assert.equal(after.reusedSocket, true, 'the open connection was dropped by the reload');
  assert.equal(after.socket, before.socket);
  agent.destroy();

  // A reload that fails (a key that is not the certificate's) keeps the certificate in use.
  fs.copyFileSync(one.keyFile, keyFile);
  serve.proc.kill('SIGHUP');
  const failure = await waitFor(() => serve.logs.find((l) => l.msg === 'TLS reload failed: still serving the previous certificate'),
    { what: 'the reload failure log line' });
  assert.equal(failure.level, 'error');
  assert.equal(failure.error, `TLS key file ${keyFile} does not match the certificate in ${certFile}`);
  assert.equal((await peerCertificate(serve.port, two.ca)).subject.CN, 'cert two', 'after a failed reload');
  assert.equal(serve.proc.exitCode, null, 'still running');
});

itest('bad TLS files or flags: exit 2 with one line that names the file', async (fx) => {
  const dir = fx.tempDir('pushhook-tls-');
  const certs = makeCertificates(dir);
  const other = makeCertificates(dir, { prefix: 'other-' });
  const missing = path.join(dir, 'missing.pem');
  const junk = path.join(dir, 'junk.pem');
  fs.writeFileSync(junk, 'not a certificate\n');
  const serve = (...tlsArgs) => run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), ...tlsArgs]);

  assertRefused(await serve('--tls-cert', certs.certFile),
    `pushhook: tls.cert_file (--tls-cert) is ${certs.certFile} but tls.key_file (--tls-key) is not set: HTTPS needs both`,
    '--tls-cert alone');
  assertRefused(await serve('--tls-key', certs.keyFile),
    `pushhook: tls.key_file (--tls-key) is ${certs.keyFile} but tls.cert_file (--tls-cert) is not set: HTTPS needs both`,
    '--tls-key alone');
  assertRefused(await serve('--tls-cert', missing, '--tls-key', certs.keyFile),
    `pushhook: cannot read TLS certificate file ${missing}: No such file or directory`, 'a missing certificate');
  assertRefused(await serve('--tls-cert', certs.certFile, '--tls-key', missing),
    `pushhook: cannot read TLS key file ${missing}: No such file or directory`, 'a missing key');
  assertRefused(await serve('--tls-cert', dir, '--tls-key', certs.keyFile),
    `pushhook: cannot read TLS certificate file ${dir}: Is a directory`, 'a folder for a certificate');
  if (process.getuid?.() !== 0) {
    // Root reads any file, so a file it may not read can only be made for another user.
    const locked = path.join(dir, 'locked.pem');
    fs.copyFileSync(certs.keyFile, locked);
    fs.chmodSync(locked, 0o000);
    assertRefused(await serve('--tls-cert', certs.certFile, '--tls-key', locked),
      `pushhook: cannot read TLS key file ${locked}: Permission denied`, 'an unreadable key');
  }
  assertRefused(await serve('--tls-cert', junk, '--tls-key', certs.keyFile),
    `pushhook: TLS certificate file ${junk} holds no PEM certificate`, 'not a certificate');
  assertRefused(await serve('--tls-cert', certs.certFile, '--tls-key', junk),
    `pushhook: TLS key file ${junk} holds no PEM private key`, 'not a key');
  assertRefused(await serve('--tls-cert', certs.certFile, '--tls-key', other.keyFile),
    `pushhook: TLS key file ${other.keyFile} does not match the certificate in ${certs.certFile}`, 'a key of another certificate');
  assert.equal(fs.existsSync(path.join(dir, 'data')), false, 'the data folder was made although the TLS files were bad');

  // The same keys from the environment.
  const fromEnv = fx.spawn(['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data')], {
    cwd: dir, env: { PUSHHOOK_TLS_CERT_FILE: certs.certFile }, name: 'pushhook serve (env)',
  });
  const envExit = await fromEnv.exited;
  assertRefused({ ...envExit, stderr: fromEnv.stderr },
    `pushhook: tls.cert_file (--tls-cert) is ${certs.certFile} but tls.key_file (--tls-key) is not set: HTTPS needs both`,
    'PUSHHOOK_TLS_CERT_FILE alone');

  // receive takes the same flags and checks them the same way.
  const secret = `whsec_${Buffer.from(randomToken(), 'hex').toString('base64')}`;
  const receiveRefused = await run(fx, ['receive', '--listen', '127.0.0.1:0', '--secret', secret, '--tls-cert', certs.certFile]);
  assert.equal(receiveRefused.code, 2, receiveRefused.stderr);
  const refusedLines = receiveRefused.stderr.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(refusedLines.length, 1, receiveRefused.stderr);
  const { ts, ...refusedLine } = refusedLines[0];
  assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'the time, as serve logs it');
  assert.deepEqual(refusedLine, { level: 'error', msg: `--tls-cert ${certs.certFile} is given without --tls-key: HTTPS needs both` });
  const receiveMismatch = await run(fx, ['receive', '--listen', '127.0.0.1:0', '--secret', secret,
    '--tls-cert', certs.certFile, '--tls-key', other.keyFile]);
  assert.equal(receiveMismatch.code, 2, receiveMismatch.stderr);
  assert.equal(JSON.parse(receiveMismatch.stderr.trim()).msg,
    `TLS key file ${other.keyFile} does not match the certificate in ${certs.certFile}`);
});

itest('receive over HTTPS: serve delivers to it, trusting the test CA with --ca-file', async (fx) => {
  const dir = fx.tempDir('pushhook-tls-');
  const certs = makeCertificates(dir);
  const serve = await fx.startServe({ args: ['--ca-file', certs.caFile] });
  const site = await serve.createSite('TLS receive');
  const port = await freePort();
  const endpoint = await serve.createEndpoint(site.id, { url: `https://127.0.0.1:${port}/hooks` });
  const receiver = await fx.startReceive({
    secret: endpoint.secret,
    listen: `127.0.0.1:${port}`,
    args: ['--tls-cert', certs.certFile, '--tls-key', certs.keyFile],
  });
  const answer = await serve.ingest(site.ingest_key, [makeEvent(1, { event_id: 'rx-1' }), makeEvent(2, { event_id: 'rx-2' })]);
  assert.equal(answer.status, 202, answer.text);
  const lines = () => (fs.existsSync(receiver.out) ? fs.readFileSync(receiver.out, 'utf8').split('\n').filter(Boolean) : []);
  await waitFor(() => lines().length === 2, { timeoutMs: 20_000, what: 'two payloads stored by the HTTPS receiver' });
  assert.deepEqual(lines().map((l) => JSON.parse(l).cookie_id).sort(), [makeEvent(1).cookie_id, makeEvent(2).cookie_id].sort());
  // Its own health check answers over https only.
  assert.equal((await httpsRequest(receiver.port, 'GET', '/healthz', { ca: certs.ca })).status, 200);
});

itest('SIGHUP to a server without TLS is logged and does not stop it', async (fx) => {
  const serve = await fx.startServe();
  serve.proc.kill('SIGHUP');
  await waitFor(() => serve.logs.some((l) => l.msg === 'SIGHUP: nothing to reload (not serving HTTPS)'), { what: 'the SIGHUP log line' });
  const health = await fetch(`${serve.baseUrl}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(serve.proc.exitCode, null, 'still running');
});
