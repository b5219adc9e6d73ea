// DESIGN section 8: `pushhook backup --out FILE` copies a running server's SQLite store while it
// takes events; the copy holds every event acknowledged before the backup began, and starting
// `serve` on it (with the same secrets key) is the restore: its statistics agree with its events
// and its endpoints still sign. PostgreSQL is backed up with pg_dump, and a restored dump serves.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PUSHHOOK_BIN, expectStatus, itest, makeEvent, sleep, stop, waitFor } from '../helpers/harness.mjs';
import { freshDatabase, postgresSkipReason, psql, randomSecretsKey, startNodes } from '../helpers/postgres.mjs';

const execFileAsync = promisify(execFile);

// Runs `pushhook args…` to its end: {code, stdout, stderr}.
async function runPushhook(fx, args, env = {}) {
  const handle = fx.spawn(args, { env, name: `pushhook ${args[0]}` });
  const result = await handle.exited;
  return { code: result.code, stdout: handle.stdout, stderr: handle.stderr };
}

async function sqliteJson(dbPath, sql) {
  const { stdout } = await execFileAsync('sqlite3', ['-json', dbPath, sql], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim() === '' ? [] : JSON.parse(stdout);
}

itest('backup under write load: the copy holds every event acknowledged before it began, and serves', { timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Backup');
  const receive = await fx.startRecorder();
  const endpoint = await serve.createEndpoint(site.id, { url: `${receive.url}/hooks`, filter: { cid: ['kept'] } });
  // Writers post batches with ids until told to stop (bounded: 40 s at most).
  const acked = [];
  let n = 0;
  let stopping = false;
  const writer = async (w) => {
    const until = Date.now() + 40_000;
    while (!stopping && Date.now() < until) {
      const batch = Array.from({ length: 200 }, () => {
        n += 1;
        return makeEvent(n, { event_id: `bk-${w}-${n}`, cid: n % 2 ? 'kept' : 'other', cookie_id: `c-${n % 500}` });
      });
      const res = await serve.ingest(site.ingest_key, batch);
      if (res.status === 202) acked.push(...batch.map((e) => e.event_id));
    }
  };
  const writers = [writer(0), writer(1)];
  await waitFor(() => acked.length >= 20_000, { timeoutMs: 30_000, what: '20,000 events acknowledged' });
  const before = new Set(acked);
  const out = path.join(fx.tempDir('pushhook-backup-'), 'copy.db');
  const backup = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', out]);
  const ackedDuring = acked.length;
  await sleep(300);
  stopping = true;
  await Promise.all(writers);
  assert.equal(backup.code, 0, `backup exit ${backup.code}: ${backup.stderr}`);
  assert.ok(acked.length > ackedDuring || acked.length > before.size, 'events were being written while it ran');
  // Not a terminal: one line per tenth, then what it wrote.
  const lines = backup.stderr.trim().split('\n');
  assert.match(lines.at(-2), /^pushhook backup: wrote .*copy\.db \(\d+\.\d MiB, \d+ pages\) in \d+\.\d s$/);
  // And what a restore needs beside it (the operator token comes from the environment here, so
  // there is no admin-token file to keep).
  assert.equal(lines.at(-1), `pushhook backup: keep ${path.join(serve.dataDir, 'secrets-key')} with the copy: it seals the endpoint secrets in it, and serve refuses the copy without it`);
  assert.ok(lines.some((l) => /^pushhook backup: 100% \(/.test(l)), backup.stderr);
  assert.deepEqual(fs.readdirSync(path.dirname(out)), ['copy.db'], 'no temporary file is left beside it');

  const stored = new Set((await sqliteJson(out, 'SELECT event_id FROM events')).map((r) => r.event_id));
  const missing = [...before].filter((id) => !stored.has(id));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} events acknowledged before the backup are not in the copy`);
  assert.equal((await sqliteJson(out, 'PRAGMA integrity_check'))[0].integrity_check, 'ok');

  // Refusals, each with its reason: an existing --out, then --force replaces it.
  const again = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', out]);
  assert.equal(again.code, 2);
  assert.equal(again.stderr.trim(), `pushhook backup: ${out} exists; --force replaces it`);
  const forced = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', out, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  // On a terminal (util-linux `script` gives it one): a bar redrawn in place.
  const quoted = (text) => `'${text.replaceAll("'", "'\\''")}'`;
  const { stdout: tty } = await execFileAsync('script', ['-q', '-e', '-c',
    [PUSHHOOK_BIN, 'backup', '--data-dir', serve.dataDir, '--out', out, '--force'].map(quoted).join(' '), '/dev/null']);
  assert.match(tty, /\r\[#{30}\] 100% \d+\.\d MiB of \d+\.\d MiB\r?\n/, `the bar on a terminal: ${JSON.stringify(tty.slice(-300))}`);
  assert.match(tty, /pushhook backup: wrote /);
  await stop(serve, 'SIGTERM');

  // The restore: serve on a folder holding the copy and the secrets key (and the token file).
  const restored = fx.tempDir('pushhook-restored-');
  fs.copyFileSync(out, path.join(restored, 'pushhook.db'));
  fs.copyFileSync(path.join(serve.dataDir, 'secrets-key'), path.join(restored, 'secrets-key'));
  const second = await fx.startServe({ dataDir: restored, adminToken: serve.adminToken });
  expectStatus(await second.api('GET', '/readyz'), 200, 'the restored server is ready');
  const count = (await sqliteJson(path.join(restored, 'pushhook.db'), 'SELECT count(*) AS n FROM events'))[0].n;
  const totals = expectStatus(await second.api('GET', `/v1/sites/${site.id}/stats`), 200, 'stats').totals;
  assert.equal(totals.views + totals.clicks + totals.dismissals, count, 'statistics agree with the copy\'s events');
  const tested = expectStatus(await second.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'send test');
  assert.equal(tested.success, true, `the restored endpoint still signs and sends: ${JSON.stringify(tested)}`);
  assert.deepEqual(expectStatus(await second.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 200, 'endpoint').filter,
    { cid: ['kept'] });
});

itest('a restored copy gives new events ids of their own: none that the source gave out after the backup', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Ids');
  const receive = await fx.startRecorder();
  await serve.createEndpoint(site.id, { url: `${receive.url}/hooks`, payload_format: 'extended' });
  const batchReceive = await fx.startRecorder();
  await serve.createEndpoint(site.id, { url: `${batchReceive.url}/hooks`, batch: { max_events: 10, max_wait_ms: 0 } });
  // What each recorder got, as [webhook-id, event_id] pairs for the single one.
  const sent = () => receive.requests.map((r) => [r.headers['webhook-id'], JSON.parse(r.body).event_id]);
  const post = async (n) => {
    expectStatus(await serve.ingest(site.ingest_key, [makeEvent(n)]), 202, `event ${n}`);
    await waitFor(() => receive.requests.length >= n && batchReceive.requests.length >= n, { what: `event ${n} delivered` });
  };
  await post(1);
  const out = path.join(fx.tempDir('pushhook-backup-ids-'), 'copy.db');
  const backup = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', out]);
  assert.equal(backup.code, 0, backup.stderr);
  // After the snapshot the source goes on: these ids reach the receivers, which keep them.
  await post(2);
  await stop(serve, 'SIGTERM');

  const restored = fx.tempDir('pushhook-restored-ids-');
  fs.copyFileSync(out, path.join(restored, 'pushhook.db'));
  fs.copyFileSync(path.join(serve.dataDir, 'secrets-key'), path.join(restored, 'secrets-key'));
  const second = await fx.startServe({ dataDir: restored, adminToken: serve.adminToken });
  expectStatus(await second.ingest(site.ingest_key, [makeEvent(3)]), 202, 'event 3');
  await waitFor(() => receive.requests.length >= 3 && batchReceive.requests.length >= 3, { what: 'event 3 delivered' });
  const [first, afterBackup, afterRestore] = sent();
  assert.notEqual(afterRestore[0], afterBackup[0], 'message ids');
  assert.notEqual(afterRestore[1], afterBackup[1], 'event ids');
  const batches = batchReceive.requests.map((r) => r.headers['webhook-id']);
  assert.equal(new Set(batches).size, 3, `batch ids: ${batches}`);
  // The copy's own rows keep theirs: the first message is found under the id it was sent with.
  const log = expectStatus(await second.api('GET', `/v1/sites/${site.id}/messages/${first[0]}`), 200, 'the first message');
  assert.equal(log.id, first[0]);
});

itest('a copy served without its secrets key: exit 2 with the reason, no key left behind; its files are 0600', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Keys');
  await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/hooks' });  // a sealed secret
  const out = path.join(fx.tempDir('pushhook-backup-keys-'), 'copy.db');
  const backup = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', out]);
  assert.equal(backup.code, 0, backup.stderr);
  // Whatever the caller's umask, what pushhook writes is its user's alone.
  const mode = (file) => (fs.statSync(file).mode & 0o777).toString(8);
  assert.deepEqual(['pushhook.db', 'pushhook.db-wal', 'secrets-key'].map((f) => mode(path.join(serve.dataDir, f))).concat(mode(out)),
    ['600', '600', '600', '600']);
  await stop(serve, 'SIGTERM');

  const restored = fx.tempDir('pushhook-restored-nokey-');
  fs.copyFileSync(out, path.join(restored, 'pushhook.db'));
  const started = await runPushhook(fx, ['serve', '--dev', '--data-dir', restored, '--listen', '127.0.0.1:0'],
    { PUSHHOOK_ADMIN_TOKEN: serve.adminToken });
  assert.equal(started.code, 2, started.stderr);
  // Every line a JSON log line, the error too; none tells of the key that was taken back.
  const lines = started.stderr.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.at(-1), {
    ...lines.at(-1),
    level: 'error',
    msg: 'cannot start',
    error: "this database's endpoint secrets were sealed with a secrets key, and there is none here: " +
      `put the key that sealed them in ${restored}/secrets-key (keep it with your backups) or set PUSHHOOK_SECRETS_KEY`,
  });
  assert.deepEqual(lines.filter((l) => /generated/.test(l.msg)), [], started.stderr);
  assert.deepEqual(fs.readdirSync(restored).filter((f) => !f.startsWith('pushhook.db')), [], 'no generated key is left');
  // Another key, from the data folder or from the environment: refused, naming where it came from.
  const otherKey = randomSecretsKey();
  fs.writeFileSync(path.join(restored, 'secrets-key'), otherKey + '\n', { mode: 0o600 });
  const sealedElsewhere = 'is not the one that sealed this database\'s endpoint secrets: start with that key ' +
    '(kept with your backups); every node sharing a database needs the same one';
  for (const [env, source] of [[{}, `the secrets key in ${restored}/secrets-key`],
    [{ PUSHHOOK_SECRETS_KEY: otherKey }, 'the secrets key given as secrets_key (PUSHHOOK_SECRETS_KEY)']]) {
    const refused = await runPushhook(fx, ['serve', '--dev', '--data-dir', restored, '--listen', '127.0.0.1:0'],
      { PUSHHOOK_ADMIN_TOKEN: serve.adminToken, ...env });
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(JSON.parse(refused.stderr.trim().split('\n').at(-1)).error, `${source} ${sealedElsewhere}`);
  }
  assert.equal(fs.readFileSync(path.join(restored, 'secrets-key'), 'utf8'), otherKey + '\n', 'the key file is left as it was');
  // With the key, the same copy serves.
  fs.copyFileSync(path.join(serve.dataDir, 'secrets-key'), path.join(restored, 'secrets-key'));
  const second = await fx.startServe({ dataDir: restored, adminToken: serve.adminToken });
  expectStatus(await second.api('GET', '/readyz'), 200, 'ready with its key');
});

itest('backup refuses what it cannot copy, with a reason and exit 2', async (fx) => {
  const dir = fx.tempDir('pushhook-backup-bad-');
  const missing = await runPushhook(fx, ['backup', '--data-dir', path.join(dir, 'nothing'), '--out', path.join(dir, 'x.db')]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr.trim(), `pushhook backup: no database at ${path.join(dir, 'nothing')}/pushhook.db ` +
    '(is --data-dir or --database the one serve uses?)');
  const pg = await runPushhook(fx, ['backup', '--database', 'postgres://127.0.0.1:1/x', '--out', path.join(dir, 'x.db')]);
  assert.equal(pg.code, 2);
  assert.equal(pg.stderr.trim(), 'pushhook backup: the store is PostgreSQL: back it up with pg_dump (README, "Backup and restore")');
  const sources = fx.tempDir('pushhook-backup-sources-');
  const notDb = path.join(sources, 'notes.txt');
  fs.writeFileSync(notDb, 'these are notes, not a database\n');
  const text = await runPushhook(fx, ['backup', '--database', `sqlite://${notDb}`, '--out', path.join(dir, 'x.db')]);
  assert.equal(text.code, 2);
  assert.equal(text.stderr.trim(), `pushhook backup: ${notDb} is not an SQLite database (is it the file serve uses?)`);
  const db = path.join(sources, 'real.db');
  await execFileAsync('sqlite3', [db, 'CREATE TABLE t(x)']);
  // Another program's SQLite database is refused before it is read, not after the copy.
  const foreign = await runPushhook(fx, ['backup', '--database', `sqlite://${db}`, '--out', path.join(dir, 'x.db')]);
  assert.equal(foreign.code, 2, foreign.stderr);
  assert.equal(foreign.stderr.trim(), `pushhook backup: ${db} is an SQLite database but not pushhook's`);
  const ours = path.join(sources, 'ours');
  assert.equal((await runPushhook(fx, ['migrate', '--data-dir', ours])).code, 0);
  const folder = fx.tempDir('pushhook-backup-folder-');
  const intoFolder = await runPushhook(fx, ['backup', '--data-dir', ours, '--out', folder, '--force']);
  assert.equal(intoFolder.code, 2, intoFolder.stderr);
  assert.equal(intoFolder.stderr.trim(), `pushhook backup: --out ${folder} is a folder; name the file to write`);
  assert.deepEqual(fs.readdirSync(folder), [], 'nothing was written into the folder');
  const nowhere = await runPushhook(fx, ['backup', '--database', `sqlite://${db}`, '--out', path.join(dir, 'no', 'x.db')]);
  assert.equal(nowhere.code, 2);
  assert.equal(nowhere.stderr.trim(), `pushhook backup: --out ${path.join(dir, 'no', 'x.db')}: there is no folder ${path.join(dir, 'no')}`);
  // An empty --out is refused before anything is read.
  const empty = await runPushhook(fx, ['backup', '--database', `sqlite://${db}`, '--out', '']);
  assert.equal(empty.code, 2, empty.stderr);
  assert.equal(empty.stderr.trim(), "pushhook backup: --out must be a file's path, got ''");
  const usage = await runPushhook(fx, ['backup']);
  assert.equal(usage.code, 2, usage.stderr);
  assert.match(usage.stderr, /--out is required/);
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was written');
});

itest('backup never writes over the live database or its log, even with --force', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Live');
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1, { event_id: 'live-1' })]), 202, 'ingest');
  const db = path.join(serve.dataDir, 'pushhook.db');
  for (const target of [db, `${db}-wal`, `${db}.lock`]) {
    const refused = await runPushhook(fx, ['backup', '--data-dir', serve.dataDir, '--out', target, '--force']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim(), `pushhook backup: --out ${target} would replace the database ${db} ` +
      'or one of its files; write the copy to another file');
  }
  assert.ok(fs.existsSync(`${db}-wal`), 'the running server keeps its log');
  // What it acknowledged after the refusals is still there after a restart.
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(2, { event_id: 'live-2' })]), 202, 'ingest');
  await stop(serve, 'SIGTERM');
  assert.deepEqual(await sqliteJson(db, 'SELECT event_id FROM events ORDER BY id'),
    [{ event_id: 'live-1' }, { event_id: 'live-2' }]);
});

itest('PostgreSQL: a pg_dump restored into a new database serves the same sites, endpoints and statistics',
  { skip: postgresSkipReason(), timeout: 120_000 }, async (fx) => {
    const { url } = await freshDatabase(fx);
    const secretsKey = randomSecretsKey();
    const [node] = await startNodes(fx, { database: url, count: 1, secretsKey });
    const site = await node.createSite('Dumped');
    const receive = await fx.startRecorder();
    const endpoint = await node.createEndpoint(site.id, { url: `${receive.url}/h` });
    const events = Array.from({ length: 300 }, (_, i) => makeEvent(i, { event_id: `pg-${i}` }));
    expectStatus(await node.ingest(site.ingest_key, events), 202, 'ingest');
    const statsBefore = expectStatus(await node.api('GET', `/v1/sites/${site.id}/stats`), 200, 'stats').totals;
    await stop(node, 'SIGTERM');

    // The README's commands: pg_dump in the custom format, pg_restore into an empty database.
    const dump = path.join(fx.tempDir('pushhook-pgdump-'), 'pushhook.dump');
    await execFileAsync('pg_dump', ['--format=custom', '--file', dump, url]);
    const { url: target } = await freshDatabase(fx);
    await execFileAsync('pg_restore', ['--no-owner', '--dbname', target, dump]);
    assert.equal(await psql(target, 'SELECT count(*) FROM events'), '300');
    // README's next step, taken from it verbatim: new ids from the next multiple of 2^40.
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const renumber = readme.match(/psql --dbname pushhook_restored --command "([^"]+)"/)[1];
    await psql(target, renumber);

    const [restored] = await startNodes(fx, { database: target, count: 1, secretsKey, adminToken: node.adminToken, prefix: 'restored' });
    const statsAfter = expectStatus(await restored.api('GET', `/v1/sites/${site.id}/stats`), 200, 'stats').totals;
    assert.deepEqual(statsAfter, statsBefore);
    const tested = expectStatus(await restored.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'send test');
    assert.equal(tested.success, true, JSON.stringify(tested));
    expectStatus(await restored.ingest(site.ingest_key, [makeEvent(300, { event_id: 'pg-after' })]), 202, 'ingest');
    // From 2^40 itself, as a restored SQLite copy numbers them.
    for (const table of ['messages', 'events']) {
      assert.equal(await psql(target, `SELECT min(id) FROM ${table} WHERE id >= 2^40`), String(2 ** 40), `the first new row of ${table}`);
    }
  });
