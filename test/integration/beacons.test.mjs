// DESIGN section 2a: signed beacons through the running server. Tokens are made by the Node
// lines of the README (read from README.md and run as written), so the documented code is what
// the server is checked against: valid tokens pass and count once, forged, mismatched and
// expired ones are refused with their code and a detail per event, and the site's mode, its
// rotation and its secret's visibility behave as the API says.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expectStatus, itest, makeEvent, stop, waitFor } from '../helpers/harness.mjs';

const run = promisify(execFile);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTOR_SECRET = 'bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const VECTOR = 'v1.1798761600.pbHqrFC2VVw4YZ2kZlXEdmSmelEEeSKzWenKEBjeEPk';

// The README's Node block, imported as the module it is.
async function readmeBeaconToken() {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = readme.match(/<!-- beacon-node:start -->\s*```js\n([\s\S]*?)```\s*<!-- beacon-node:end -->/);
  assert.ok(block, 'README.md has the beacon-node block');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-readme-'));
  try {
    const file = path.join(dir, 'beacon.mjs');
    fs.writeFileSync(file, block[1]);
    return (await import(pathToFileURL(file).href)).beaconToken;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const inAWeek = () => Math.floor(Date.now() / 1000) + 7 * 24 * 3600;

itest('the README lines make the test vector', async () => {
  const beaconToken = await readmeBeaconToken();
  assert.equal(beaconToken(VECTOR_SECRET, 'site_demo', '1123123', '123422',
    '7e32b7a1-acfc-45db-83fb-766d2a8a2bce', 1798761600), VECTOR);
});

itest('signed beacons: checked, counted once, refused with a reason, by the site\'s mode', async (fx, t) => {
  const beaconToken = await readmeBeaconToken();
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Beacons');
  assert.match(site.beacon_secret, /^bsec_[A-Za-z0-9+/]{43}=$/, 'shown once, at creation');
  assert.equal(site.beacons, 'optional');
  const read = expectStatus(await serve.api('GET', `/v1/sites/${site.id}`), 200, 'GET site');
  assert.equal(read.beacon_secret, undefined, 'never shown on a read');
  assert.equal(read.beacons, 'optional');
  await serve.createEndpoint(site.id, {
    url: `${recorder.url}/hooks`, events: ['View', 'Click', 'Dismiss'], payload_format: 'extended',
  });

  const tokenFor = (event, secret = site.beacon_secret, expires = inAWeek()) =>
    beaconToken(secret, site.id, event.cid, event.reference_id, event.cookie_id, expires);
  const signed = (n, overrides = {}) => {
    const event = makeEvent(n, overrides);
    return { ...event, beacon: tokenFor(event) };
  };
  const refused = async (body, code, details) => {
    const answer = await serve.ingest(site.ingest_key, body);
    const json = expectStatus(answer, 401, `POST refused with ${code}`);
    assert.equal(json.error.code, code);
    assert.equal(json.error.message, 'a beacon token did not pass; nothing of the request was stored');
    assert.deepEqual(json.error.details, details);
    assert.equal(answer.headers.get('access-control-allow-origin'), '*', 'a worker can read the refusal');
  };
  const invalid = 'is not a token of this site for this event\'s cid, reference_id and cookie_id';

  await t.test('optional: a valid token passes, keeps the event_id, and is never forwarded', async () => {
    const click = signed(1, { action: 'Click', clicked_button: 2, event_id: 'click-1' });
    expectStatus(await serve.ingest(site.ingest_key, click), 202, 'POST a signed click');
    await waitFor(() => recorder.requests.length >= 1, { what: 'the signed click' });
    assert.ok(!recorder.requests[0].body.includes('beacon'), recorder.requests[0].body);
    const delivered = JSON.parse(recorder.requests[0].body);
    assert.equal(delivered.clicked_button, 2);
    assert.equal(delivered.event_id, 'click-1', 'the client\'s event_id, not the token\'s key');
    // The same token again, whatever event_id says, is the same click.
    const replay = await serve.ingest(site.ingest_key, { ...click, event_id: 'click-1-again' });
    assert.deepEqual(expectStatus(replay, 202, 'POST the replay'), { accepted: 0, duplicates: 1 });
    // The same token for another action (its View) counts on its own.
    const view = { ...click, action: 'View', clicked_button: 0, event_id: 'view-1' };
    assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, view), 202, 'POST its view'),
      { accepted: 1, duplicates: 0 });
    // Another token under an event_id the site has: a duplicate, as it is without tokens.
    assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, signed(3, { event_id: 'click-1' })), 202,
      'POST another token under a known event_id'), { accepted: 0, duplicates: 1 });
    // No token: accepted as before.
    expectStatus(await serve.ingest(site.ingest_key, makeEvent(2)), 202, 'POST without a token');
  });

  await t.test('a forged, mismatched or expired token refuses the whole request', async () => {
    const before = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats`), 200, 'stats before');
    const forged = makeEvent(10);
    const otherSubscriber = makeEvent(11);
    const expired = makeEvent(12);
    await refused([
      signed(9),
      { ...forged, beacon: tokenFor(forged, 'bsec_' + Buffer.alloc(32, 7).toString('base64')) },
      { ...otherSubscriber, beacon: tokenFor({ ...otherSubscriber, cookie_id: 'someone-else' }) },
      { ...expired, beacon: tokenFor(expired, site.beacon_secret, Math.floor(Date.now() / 1000) - 60) },
      { ...makeEvent(13), beacon: 'v1.not-a-token' },
      // Sent, so checked, though empty: a token the push backend never filled in.
      { ...makeEvent(14), beacon: '' },
    ], 'beacon_invalid', [
      { index: 1, field: 'beacon', message: invalid },
      { index: 2, field: 'beacon', message: invalid },
      { index: 3, field: 'beacon', message: 'has expired' },
      { index: 4, field: 'beacon', message: invalid },
      { index: 5, field: 'beacon', message: 'is empty: send the token the push backend made, or leave the field out' },
    ]);
    await refused({ ...expired, beacon: tokenFor(expired, site.beacon_secret, Math.floor(Date.now() / 1000) - 60) },
      'beacon_expired', [{ index: 0, field: 'beacon', message: 'has expired' }]);
    const after = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats`), 200, 'stats after');
    assert.deepEqual(after.totals, before.totals, 'nothing of a refused request was counted');
  });

  await t.test('required refuses an event without a token, at once', async () => {
    const patched = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}`, { beacons: 'required' }), 200, 'PATCH beacons');
    assert.equal(patched.beacons, 'required');
    assert.equal(patched.name, 'Beacons');
    assert.equal(patched.beacon_secret, undefined);
    await refused([signed(20), makeEvent(21)], 'beacon_required',
      [{ index: 1, field: 'beacon', message: 'is required: this site takes only events with a signed beacon token' }]);
    expectStatus(await serve.ingest(site.ingest_key, signed(22)), 202, 'a signed event still passes');
  });

  await t.test('a rotation keeps the old secret valid beside the new one', async () => {
    const rotated = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/rotate-beacon-secret`), 200, 'rotate');
    assert.match(rotated.beacon_secret, /^bsec_/);
    assert.notEqual(rotated.beacon_secret, site.beacon_secret);
    const overlap = Date.parse(rotated.previous_beacon_secret_expires_at) - Date.now();
    assert.ok(overlap > 23.9 * 3600e3 && overlap <= 24 * 3600e3, `24 h overlap, got ${rotated.previous_beacon_secret_expires_at}`);
    const old = makeEvent(30);
    expectStatus(await serve.ingest(site.ingest_key, { ...old, beacon: tokenFor(old) }), 202, 'a token of the old secret');
    const fresh = makeEvent(31);
    expectStatus(await serve.ingest(site.ingest_key, { ...fresh, beacon: tokenFor(fresh, rotated.beacon_secret) }), 202,
      'a token of the new secret');
    // Again within the overlap: tokens of all three secrets pass.
    const again = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/rotate-beacon-secret`), 200, 'rotate again');
    for (const [n, secret] of [[32, site.beacon_secret], [33, rotated.beacon_secret], [34, again.beacon_secret]]) {
      const event = makeEvent(n);
      expectStatus(await serve.ingest(site.ingest_key, { ...event, beacon: tokenFor(event, secret) }), 202,
        `a token of secret ${n - 31} after two rotations`);
    }
    // expire_previous: the old ones stop at once (a leaked secret).
    const cut = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/rotate-beacon-secret`, { expire_previous: true }),
      200, 'rotate with expire_previous');
    assert.equal(cut.previous_beacon_secret_expires_at, null);
    const stale = makeEvent(35);
    await refused({ ...stale, beacon: tokenFor(stale, again.beacon_secret) }, 'beacon_invalid',
      [{ index: 0, field: 'beacon', message: invalid }]);
    const current = makeEvent(36);
    expectStatus(await serve.ingest(site.ingest_key, { ...current, beacon: tokenFor(current, cut.beacon_secret) }), 202,
      'a token of the new secret');
  });

  await t.test('off ignores tokens, even forged ones', async () => {
    expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}`, { beacons: 'off' }), 200, 'PATCH off');
    expectStatus(await serve.ingest(site.ingest_key, { ...makeEvent(40), beacon: 'v1.1.forged' }), 202, 'a forged token, off');
    // Ignored means ignored: a field a client fills wrongly costs no event while beacons are off.
    expectStatus(await serve.ingest(site.ingest_key, [{ ...makeEvent(41), beacon: 5 }, { ...makeEvent(42), beacon: 'a'.repeat(5000) }]),
      202, 'beacons that are not tokens, off');
  });

  await t.test('bad site changes answer 400 with the reason, and a read token may not make them', async () => {
    const bad = await serve.api('PATCH', `/v1/sites/${site.id}`, { beacons: 'always' });
    assert.equal(expectStatus(bad, 400, 'PATCH beacons=always').error.message,
      'field \'beacons\' must be "off", "optional" or "required"');
    const unknown = await serve.api('PATCH', `/v1/sites/${site.id}`, { beacon: 'off' });
    assert.equal(expectStatus(unknown, 400, 'PATCH beacon').error.message, 'unknown field \'beacon\'');
    const empty = await serve.api('PATCH', `/v1/sites/${site.id}`, { name: '' });
    assert.equal(expectStatus(empty, 400, 'PATCH name=""').error.message, 'field \'name\' must not be empty');
    const token = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/tokens`, { scope: 'read' }), 201, 'read token').token;
    expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}`, { beacons: 'off' }, token), 403, 'PATCH with a read token');
    expectStatus(await serve.api('POST', `/v1/sites/${site.id}/rotate-beacon-secret`, undefined, token), 403, 'rotate with a read token');
    expectStatus(await serve.api('PATCH', '/v1/sites/site_nope', { beacons: 'off' }), 404, 'PATCH an unknown site');
  });
});

// Sites made before beacons existed get a secret when the upgraded server opens the database:
// stored sealed, like every secret, and usable at once (a rotation shows it as usual).
itest('a site without a beacon secret gets one at start, sealed at rest', async (fx) => {
  const first = await fx.startServe();
  const site = await first.createSite('Old site');
  await stop(first, 'SIGTERM');
  const db = path.join(first.dataDir, 'pushhook.db');
  await run('sqlite3', [db, `UPDATE sites SET beacon_secret = '' WHERE id = '${site.id}'`]);
  const second = await fx.startServe({ dataDir: first.dataDir, adminToken: first.adminToken });
  const { stdout } = await run('sqlite3', [db, `SELECT beacon_secret FROM sites WHERE id = '${site.id}'`]);
  assert.match(stdout.trim(), /^enc:v1:/, 'a sealed secret');
  assert.ok(!stdout.includes(site.beacon_secret.slice(5)), 'not the old one');
  const rotated = expectStatus(await second.api('POST', `/v1/sites/${site.id}/rotate-beacon-secret`), 200, 'rotate');
  assert.match(rotated.beacon_secret, /^bsec_/);
});
