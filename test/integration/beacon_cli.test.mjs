// DESIGN section 2a: `pushhook beacon` makes the token a push backend would, matching the
// README's test vector; every bad input exits 2 with a one-line reason.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { itest, stop } from '../helpers/harness.mjs';

const SECRET = 'bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const VECTOR = 'v1.1798761600.pbHqrFC2VVw4YZ2kZlXEdmSmelEEeSKzWenKEBjeEPk';
const SUBJECT = ['--site', 'site_demo', '--cid', '1123123', '--reference-id', '123422',
  '--cookie-id', '7e32b7a1-acfc-45db-83fb-766d2a8a2bce'];

async function run(fx, args) {
  const handle = fx.spawn(['beacon', ...args], { name: `pushhook beacon ${args.join(' ')}` });
  let timer;
  const result = await Promise.race([
    handle.exited,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), 10_000); }),
  ]);
  clearTimeout(timer);
  if (!result) {
    await stop(handle, 'SIGKILL');
    assert.fail('pushhook beacon did not exit');
  }
  return { ...result, stdout: handle.stdout, stderr: handle.stderr };
}

itest('beacon --expires prints the README test vector', async (fx) => {
  const r = await run(fx, ['--secret', SECRET, ...SUBJECT, '--expires', '1798761600']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${VECTOR}\n`);
});

itest('beacon --expires far ahead or past warns that ingest refuses it; with --ttl it is a usage error', async (fx) => {
  const far = Math.floor(Date.now() / 1000) + 31 * 24 * 3600;
  const r = await run(fx, ['--secret', SECRET, ...SUBJECT, '--expires', String(far)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^v1\.\d+\.[A-Za-z0-9_-]+\n$/);
  assert.match(r.stderr, /warning: --expires is more than 30 days from now; ingest refuses such a token/);
  const past = await run(fx, ['--secret', SECRET, ...SUBJECT, '--expires', String(Math.floor(Date.now() / 1000) - 3600)]);
  assert.equal(past.code, 0, past.stderr);
  assert.match(past.stdout, /^v1\.\d+\.[A-Za-z0-9_-]+\n$/);
  assert.equal(past.stderr.trim(), 'pushhook beacon: warning: --expires is not in the future; ingest refuses such a token (beacon_expired)');
  const both = await run(fx, ['--secret', SECRET, ...SUBJECT, '--expires', '1798761600', '--ttl', '1d']);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /--ttl excludes --expires|--expires excludes --ttl/);
  assert.equal(both.stdout, '');
});

itest('beacon --ttl signs an expiry that far ahead, verifiable with node:crypto', async (fx) => {
  const before = Math.floor(Date.now() / 1000);
  const r = await run(fx, ['--secret', SECRET, ...SUBJECT, '--ttl', '2h']);
  assert.equal(r.code, 0, r.stderr);
  const [version, exp, sig] = r.stdout.trim().split('.');
  assert.equal(version, 'v1');
  const after = Math.floor(Date.now() / 1000);
  assert.ok(Number(exp) >= before + 7200 && Number(exp) <= after + 7200, `exp ${exp}`);
  const b64 = (s) => Buffer.from(s, 'utf8').toString('base64url');
  const signed = ['v1', exp, b64('site_demo'), b64('1123123'), b64('123422'),
    b64('7e32b7a1-acfc-45db-83fb-766d2a8a2bce')].join('.');
  const key = Buffer.from(SECRET.slice('bsec_'.length), 'base64');
  assert.equal(sig, createHmac('sha256', key).update(signed).digest('base64url'));
});

itest('beacon refuses bad input with exit 2 and one line naming it', async (fx) => {
  const cases = [
    [['--secret', 'whsec_AAAA', ...SUBJECT], /^pushhook beacon: --secret must be a beacon secret, bsec_ followed by base64$/],
    [['--secret', SECRET, ...SUBJECT, '--ttl', '31d'], /^pushhook beacon: --ttl must be at most 30d$/],
    [['--secret', SECRET, ...SUBJECT, '--ttl', 'soon'], /^pushhook beacon: --ttl must be a duration such as 7d or 12h, got 'soon'$/],
    // A token's time is whole seconds: 500ms would expire as it is printed.
    [['--secret', SECRET, ...SUBJECT, '--ttl', '500ms'], /^pushhook beacon: --ttl must be at least 1s, got '500ms'$/],
    [['--secret', SECRET, ...SUBJECT, '--expires=-5'], /^pushhook beacon: --expires must be Unix seconds, got -5$/],
    [['--secret', SECRET, '--site', 's', '--cid', 'x'.repeat(65), '--cookie-id', 'u'], /^pushhook beacon: --cid must be 1 to 64 bytes$/],
    [['--secret', SECRET, '--site', 's', '--cid', 'c', '--cookie-id', 'u'.repeat(129)], /^pushhook beacon: --cookie-id must be 1 to 128 bytes$/],
    [['--secret', SECRET, '--site', 's', '--cid', 'c'], /cookie-id/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run(fx, args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}; ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
    assert.match(lines[0], pattern);
    assert.equal(r.stdout, '');
  }
});
