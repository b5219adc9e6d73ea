// DESIGN section 8: configuration in its three forms (flag, PUSHHOOK_* variable, TOML file),
// exit code 2 with a one-line reason for bad configuration, --help, graceful SIGTERM.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expectStatus, itest, makeEvent, PUSHHOOK_BIN, REPO_ROOT, stop } from '../helpers/harness.mjs';
import { freshDatabase, postgresSkipReason, psql } from '../helpers/postgres.mjs';

const execFileAsync = promisify(execFile);

// Runs pushhook to completion (killing it after `timeoutMs`): {code, signal, stdout, stderr}.
async function run(fx, args, { env = {}, timeoutMs = 15_000 } = {}) {
  const cwd = fx.tempDir('pushhook-config-');
  const handle = fx.spawn(args, { cwd, env, name: `pushhook ${args.join(' ')}` });
  let timer;
  const result = await Promise.race([
    handle.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!result) {
    await stop(handle, 'SIGKILL');
    assert.fail(`pushhook ${args.join(' ')} still running after ${timeoutMs} ms; stderr:\n${handle.stderr}`);
  }
  return { ...result, stdout: handle.stdout, stderr: handle.stderr, cwd };
}

function assertBadConfig(result, pattern, what) {
  assert.equal(result.code, 2, `${what}: exit code ${result.code} (signal ${result.signal}); stderr:\n${result.stderr}`);
  const lines = result.stderr.trim().split('\n').filter((l) => l.trim().length > 0);
  assert.equal(lines.length, 1, `${what}: a one-line reason on stderr, got:\n${result.stderr}`);
  assert.match(lines[0], pattern, `${what}: the reason names the problem`);
}

// A start-up failure of serve found once it has begun to log: exit 2, and every line on stderr a
// JSON log line (DESIGN section 8), the last one the error: exactly `error`, a string, or
// matching it, a RegExp. Returns the lines.
function assertStartRefused(result, error, what) {
  assert.equal(result.code, 2, `${what}: exit code ${result.code} (signal ${result.signal}); stderr:\n${result.stderr}`);
  const lines = result.stderr.trim().split('\n').map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return assert.fail(`${what}: a line that is no JSON log line: ${l}`);
    }
  });
  assert.deepEqual(lines.filter((l) => l.level === 'error'), [lines.at(-1)], `${what}: one error, the last line`);
  assert.equal(lines.at(-1).msg, 'cannot start', what);
  if (error instanceof RegExp) {
    assert.match(lines.at(-1).error, error, what);
  } else {
    assert.equal(lines.at(-1).error, error, what);
  }
  return lines;
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

itest('a value that a later source overrides is no error; the value used is checked and names its source', async (fx) => {
  const dir = fx.tempDir('pushhook-config-');
  const file = path.join(dir, 'pushhook.toml');
  fs.writeFileSync(file, 'durability = "bogus"\nlisten = "999.1.1.1:80"\n\n[delivery]\ntimeout = "soon"\n');
  // File, then environment, then flags: each bad value is overridden, and serve starts.
  const serve = await fx.startServe({
    args: ['--config', file, '--durability', 'full', '--delivery-timeout', '5s'],
    env: { PUSHHOOK_DURABILITY: 'bogus', PUSHHOOK_DELIVERY_TIMEOUT: 'bogus', PUSHHOOK_DATA_DIR: '', PUSHHOOK_LISTEN: 'nowhere' },
  });
  expectStatus(await serve.api('GET', '/readyz'), 200, 'serving with the values that won');

  const listen = ['--listen', '127.0.0.1:0'];
  for (const [args, env, reason] of [
    [[...listen, '--durability', 'bogus'], {}, "--durability: durability must be full or normal, got 'bogus'"],
    [listen, { PUSHHOOK_DURABILITY: 'bogus' }, "PUSHHOOK_DURABILITY: durability must be full or normal, got 'bogus'"],
    [['--config', file, '--delivery-timeout', '5s'], { PUSHHOOK_DURABILITY: 'full' },
      `config file ${file}: listen must be an IP address (or localhost) and a port, got '999.1.1.1:80'`],
    [[...listen, '--config', file, '--durability', 'full'], {},
      `config file ${file}: delivery.timeout must be a duration such as 500ms, 15s or 7d, got 'soon'`],
    [[...listen, '--config', file, '--delivery-timeout', '5s'], {},
      `config file ${file}: durability must be full or normal, got 'bogus'`],
    [['--config', file, '--durability', 'normal', '--delivery-timeout', '5s'], { PUSHHOOK_LISTEN: 'nowhere' },
      "PUSHHOOK_LISTEN: listen must be host:port, got 'nowhere'"],
    [['--listen', 'localhost'], {}, "--listen: listen must be host:port, got 'localhost'"],
    [[...listen, '--data-dir', ''], {}, '--data-dir: data_dir must not be empty'],
  ]) {
    const result = await run(fx, ['serve', ...args], { env });
    assertBadConfig(result, new RegExp(`^pushhook: ${escapeRegExp(reason)}$`), `serve ${args.join(' ')} ${JSON.stringify(env)}`);
    assert.ok(!fs.existsSync(path.join(result.cwd, 'pushhook-data')), 'nothing was written');
  }
  // A key that is no setting is a typo, whatever else sets that value.
  const typo = path.join(dir, 'typo.toml');
  fs.writeFileSync(typo, 'durabilty = "full"\n');
  assertBadConfig(await run(fx, ['serve', ...listen, '--config', typo, '--durability', 'full']),
    new RegExp(`^pushhook: config file ${escapeRegExp(typo)}: unknown key durabilty$`), 'an unknown key');
});

itest('a serve that cannot open its database exits 2 with one JSON error line, leaving no key it made', async (fx) => {
  // A database a newer pushhook upgraded: schema version 99.
  const newer = fx.tempDir('pushhook-newer-');
  const migrated = await run(fx, ['migrate', '--data-dir', newer]);
  assert.equal(migrated.code, 0, migrated.stderr);
  await execFileAsync('sqlite3', [path.join(newer, 'pushhook.db'), 'PRAGMA user_version = 99']);
  const newerReason = /^database schema version 99 is newer than this pushhook knows \(\d+\): run the pushhook that upgraded it$/;
  // A data folder whose pushhook.db is no SQLite file.
  const notDb = fx.tempDir('pushhook-notdb-');
  fs.writeFileSync(path.join(notDb, 'pushhook.db'), 'these are notes, not a database\n');

  for (const [dir, reason] of [[newer, newerReason], [notDb, `${path.join(notDb, 'pushhook.db')} is not an SQLite database (is it the file serve uses?)`]]) {
    const before = fs.readdirSync(dir).sort();
    // No PUSHHOOK_ADMIN_TOKEN and no secrets-key: serve makes both before it opens the database.
    const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir]);
    const lines = assertStartRefused(result, reason, `serve on ${dir}`);
    assert.deepEqual(lines.filter((l) => /generated/.test(l.msg)), [], 'no log line tells of a key that is gone');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f === 'secrets-key' || f === 'admin-token'), [],
      `no generated key is left in ${dir}`);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => !f.startsWith('pushhook.db')).sort(),
      before.filter((f) => !f.startsWith('pushhook.db')), 'the folder is as it was');
  }
  // Files that were there before stay as they were.
  fs.writeFileSync(path.join(notDb, 'admin-token'), 'pha_mine\n');
  assert.equal((await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', notDb])).code, 2);
  assert.equal(fs.readFileSync(path.join(notDb, 'admin-token'), 'utf8'), 'pha_mine\n');
  assert.ok(!fs.existsSync(path.join(notDb, 'secrets-key')), 'the key made by the failed start is gone');

  // migrate refuses the newer schema with exit 2 too.
  const migrate = await run(fx, ['migrate', '--data-dir', newer]);
  assert.equal(migrate.code, 2, migrate.stderr);
  const line = JSON.parse(migrate.stderr.trim());
  assert.equal(line.level, 'error');
  assert.equal(line.msg, 'migration failed');
  assert.match(line.error, newerReason);
});

itest('PostgreSQL: serve and migrate on a schema a newer pushhook made exit 2', { skip: postgresSkipReason() }, async (fx) => {
  const { url } = await freshDatabase(fx);
  const migrated = await run(fx, ['migrate', '--database', url]);
  assert.equal(migrated.code, 0, migrated.stderr);
  await psql(url, 'UPDATE pushhook_schema SET version = 99');
  const reason = /^database schema version 99 is newer than this pushhook knows \(\d+\): run the pushhook that upgraded it$/;
  const migrate = await run(fx, ['migrate', '--database', url]);
  assert.equal(migrate.code, 2, migrate.stderr);
  assert.match(JSON.parse(migrate.stderr.trim()).error, reason);
  const serve = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data', '--database', url]);
  assertStartRefused(serve, reason, 'serve');
  assert.deepEqual(fs.readdirSync(path.join(serve.cwd, 'data')), [], 'no key file is left behind');
});

itest('serve --durability bogus exits 2 with a one-line reason', async (fx) => {
  const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data', '--durability', 'bogus']);
  assertBadConfig(result, /durability/i, '--durability bogus');
});

itest('PUSHHOOK_DURABILITY=bogus exits 2 with a one-line reason', async (fx) => {
  const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data'], { env: { PUSHHOOK_DURABILITY: 'bogus' } });
  assertBadConfig(result, /durability/i, 'PUSHHOOK_DURABILITY=bogus');
});

itest('a TOML file with a bad retry schedule exits 2 with a one-line reason', async (fx) => {
  const dir = fx.tempDir('pushhook-config-');
  const file = path.join(dir, 'pushhook.toml');
  fs.writeFileSync(file, 'listen = "127.0.0.1:0"\n\n[delivery]\nretry_schedule = "5s,soon"\n');
  const result = await run(fx, ['serve', '--config', file, '--data-dir', path.join(dir, 'data')]);
  assertBadConfig(result, /retry|schedule|soon/i, 'delivery.retry_schedule = "5s,soon"');
});

itest('an unknown flag and a bad --retry-schedule exit 2', async (fx) => {
  const unknown = await run(fx, ['serve', '--no-such-flag']);
  assert.equal(unknown.code, 2, `unknown flag: exit ${unknown.code}; stderr:\n${unknown.stderr}`);
  const schedule = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data', '--retry-schedule', 'often']);
  assertBadConfig(schedule, /retry|schedule|often/i, '--retry-schedule often');
});

itest('--help on the binary and on its subcommands exits 0', async (fx) => {
  const top = await run(fx, ['--help']);
  assert.equal(top.code, 0, top.stderr);
  const topText = top.stdout + top.stderr;
  for (const sub of ['serve', 'receive']) assert.match(topText, new RegExp(sub), `--help lists ${sub}`);

  const serve = await run(fx, ['serve', '--help']);
  assert.equal(serve.code, 0, serve.stderr);
  for (const flag of ['--listen', '--data-dir', '--durability', '--retry-schedule', '--dev', '--allow-http']) {
    assert.ok((serve.stdout + serve.stderr).includes(flag), `serve --help mentions ${flag}`);
  }
  // And the settings no flag sets, where to set them.
  for (const name of ['PUSHHOOK_ADMIN_TOKEN', 'PUSHHOOK_SECRETS_KEY', 'retention.delivered, PUSHHOOK_RETENTION_DELIVERED',
    'retention.failed, PUSHHOOK_RETENTION_FAILED']) {
    assert.ok(serve.stdout.includes(`\n  ${name}\n`), `serve --help lists ${name}`);
  }

  const receive = await run(fx, ['receive', '--help']);
  assert.equal(receive.code, 0, receive.stderr);
  for (const flag of ['--listen', '--secret', '--out']) {
    assert.ok((receive.stdout + receive.stderr).includes(flag), `receive --help mentions ${flag}`);
  }
});

// Every option of every subcommand that takes a value says what it is when not given: a
// CLI11 "=default", "REQUIRED", or "(default: …)" in its text. Flags (no value) are off.
itest('--help of every subcommand lists each option with its default', async (fx) => {
  const top = await run(fx, ['--help']);
  const subs = [...top.stdout.matchAll(/^ {2}([a-z]+)\s{2,}/gm)].map((m) => m[1]);
  assert.deepEqual(subs, ['serve', 'migrate', 'receive', 'stats', 'send', 'backup', 'beacon', 'bench', 'version']);
  for (const sub of subs.filter((s) => s !== 'bench' && s !== 'version')) {
    const help = await run(fx, [sub, '--help']);
    assert.equal(help.code, 0, help.stderr);
    // An option's entry: from its line to the next option's (CLI11 wraps long ones).
    const entries = help.stdout.split(/\n(?= {2}-)/).filter((e) => /^ {2}--/.test(e));
    assert.ok(entries.length >= 2, `${sub} --help lists options:\n${help.stdout}`);
    for (const entry of entries) {
      const takesValue = /^ {2}--[\w-]+ (TEXT|INT|UINT|FLOAT)/.test(entry);
      if (!takesValue) continue;
      assert.match(entry, /=\S|REQUIRED|\(default: [^)]+\)|default: /, `${sub}: ${entry.trim().split('\n')[0]} names its default`);
    }
  }
});

itest('version names the commit and the libraries; a mistyped subcommand names itself and the real ones', async (fx) => {
  const version = await run(fx, ['version']);
  assert.equal(version.code, 0, version.stderr);
  const lines = Object.fromEntries(version.stdout.trim().split('\n').map((l) => [l.split(' ')[0], l.slice(l.indexOf(' ') + 1)]));
  assert.deepEqual(Object.keys(lines), ['pushhook', 'commit', 'sqlite', 'libpq', 'openssl', 'boost']);
  assert.match(lines.pushhook, /^\d+\.\d+\.\d+$/);
  assert.match(lines.commit, /^([0-9a-f]{7,}(-dirty)?|unknown)$/);
  assert.match(lines.sqlite, /^3\.\d+\.\d+$/);
  assert.match(lines.openssl, /^\d+\.\d+\.\d+/);
  assert.match(lines.boost, /^1\.\d+\.\d+$/);
  const flag = await run(fx, ['--version']);
  assert.equal(flag.stdout.trim(), `pushhook ${lines.pushhook} (${lines.commit})`);

  const typo = await run(fx, ['frobnicate']);
  assert.equal(typo.code, 2);
  assert.equal(typo.stderr.trim(), "pushhook: unknown subcommand 'frobnicate'; the subcommands are serve, migrate, " +
    'receive, stats, send, backup, beacon, bench, version (pushhook --help says more)');
  const none = await run(fx, []);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^pushhook: a subcommand is required: serve, migrate,/);
});

// Settings that cannot work are refused before the data folder is made or anything is put in it.
itest('a serve whose settings are invalid writes nothing into the data folder', async (fx) => {
  const cases = [
    [['--retry-schedule', 'often'], {}],
    [['--listen', '999.1.1.1:80'], {}],
    [['--listen', 'localhost'], {}],
    [['--database', 'mysql://db/x'], {}],
    [['--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], {}],
    [['--tls-cert', '/nonexistent/cert.pem'], {}],
    [[], { PUSHHOOK_SECRETS_KEY: 'too-short' }],
  ];
  for (const [args, env] of cases) {
    const result = await run(fx, ['serve', '--data-dir', 'data', ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...args], { env });
    const what = `serve ${args.join(' ')} ${JSON.stringify(env)}`;
    assert.equal(result.code, 2, `${what}: exit ${result.code}; stderr:\n${result.stderr}`);
    const data = path.join(result.cwd, 'data');
    const left = fs.existsSync(data) ? fs.readdirSync(data) : [];
    assert.deepEqual(left, [], `${what}: the data folder holds ${left.join(', ')}; stderr:\n${result.stderr}`);
  }
});

itest('serve stops on SIGTERM with exit code 0', async (fx) => {
  const serve = await fx.startServe();
  const result = await stop(serve, 'SIGTERM', 15_000);
  assert.deepEqual(result, { code: 0, signal: null });
});

itest('bench runs the repository harness against this binary and passes its options through', async (fx) => {
  const help = await run(fx, ['bench', '--help']);
  assert.equal(help.code, 0, `bench --help: exit ${help.code}; stderr:\n${help.stderr}`);
  assert.match(help.stdout, /benchmark harness \(bench\/run\.mjs/);
  // An option the harness refuses comes back with the harness's own usage error and exit code.
  // A binary built in the repository finds the harness beside it; one built elsewhere is told.
  const inRepository = fs.realpathSync(PUSHHOOK_BIN).startsWith(`${fs.realpathSync(REPO_ROOT)}${path.sep}`);
  const refused = await run(fx, ['bench', '--only', '99'], {
    env: inRepository ? {} : { PUSHHOOK_BENCH_HARNESS: path.join(REPO_ROOT, 'bench', 'run.mjs') },
  });
  assert.equal(refused.code, 2, `bench --only 99: exit ${refused.code}; stderr:\n${refused.stderr}`);
  assert.match(refused.stderr, /--only takes figure numbers/);
  // Without a harness to find, a clear reason and exit 1.
  const missing = await run(fx, ['bench', '--smoke'], {
    env: { PUSHHOOK_BENCH_HARNESS: '/nonexistent/run.mjs' },
  });
  assert.equal(missing.code, 1, `bench without its harness: exit ${missing.code}`);
  assert.match(missing.stderr, /harness \(bench\/run\.mjs\) was not found at PUSHHOOK_BENCH_HARNESS/);
});

itest('--allow-http=false turns off what the environment turned on; =true and the bare flag turn it on', async (fx) => {
  const env = { PUSHHOOK_DELIVERY_ALLOW_HTTP: 'true', PUSHHOOK_DELIVERY_ALLOW_PRIVATE_DESTINATIONS: 'true' };
  const endpoint = { url: 'http://127.0.0.1:9/hooks' };
  for (const [args, status] of [[['--allow-http=false'], 422], [['--allow-http=0'], 422], [[], 201], [['--allow-http=true'], 201]]) {
    const serve = await fx.startServe({ dev: false, env, args });
    const site = await serve.createSite();
    const answer = await serve.api('POST', `/v1/sites/${site.id}/endpoints`, endpoint);
    assert.equal(answer.status, status, `serve ${args.join(' ')} with ${JSON.stringify(env)}: ${answer.text}`);
    await stop(serve);
  }
  const unset = await fx.startServe({ dev: false, env: { PUSHHOOK_DELIVERY_ALLOW_PRIVATE_DESTINATIONS: 'true' }, args: ['--allow-http'] });
  const site = await unset.createSite();
  assert.equal((await unset.api('POST', `/v1/sites/${site.id}/endpoints`, endpoint)).status, 201, 'the bare flag allows http');
});

itest('a --ca-file that is missing or holds no certificate exits 2 at start, naming the file', async (fx) => {
  const dir = fx.tempDir('pushhook-config-');
  const garbage = path.join(dir, 'garbage.pem');
  fs.writeFileSync(garbage, 'not a certificate\n');
  for (const [file, reason] of [[path.join(dir, 'missing.pem'), /No such file/], [garbage, /no certificate/]]) {
    const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--ca-file', file]);
    assertBadConfig(result, /ca_file|--ca-file/, `--ca-file ${file}`);
    assert.ok(result.stderr.includes(file), `the reason names ${file}: ${result.stderr}`);
    assert.match(result.stderr, reason);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'data')), 'nothing was written into the data folder');
});

itest('send refuses counts, batches and limits out of range with exit 2, sending nothing', async (fx) => {
  for (const [flag, value, pattern] of [
    ['--count', '-1', /--count: must be a whole number of events from 1, got '-1'/],
    ['--count', '0', /--count: must be a whole number/],
    ['--batch', '0', /--batch: must be a number of events per request from 1, got '0'/],
    ['--connections', '0', /--connections: must be a number of connections from 1 to 10000/],
    ['--max-seconds', '0', /--max-seconds: must be a number of seconds above 0/],
    ['--rate', '-1', /--rate: must be a number of requests per second, 0 or more/],
  ]) {
    // Port 1 on loopback: nothing listens there, and nothing is tried before the check.
    const result = await run(fx, ['send', '--server', 'http://127.0.0.1:1', '--key', 'k', flag, value], { timeoutMs: 5_000 });
    assertBadConfig(result, pattern, `send ${flag} ${value}`);
  }
});

itest('send says why its requests were refused: the server\'s answer, or what kept it from one', async (fx) => {
  const serve = await fx.startServe();
  const refused = await run(fx, ['send', '--server', serve.baseUrl, '--key', 'pk_not_a_key', '--count', '3']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stdout, /"accepted":0,"refused":3/);
  assert.equal(refused.stderr.trim(),
    'pushhook send: the first request refused: HTTP 401: {"error":{"code":"unauthorized","message":"unknown ingest key"}}');
  // Port 1 on loopback: nothing listens there.
  const unreachable = await run(fx, ['send', '--server', 'http://127.0.0.1:1', '--key', 'k', '--count', '1']);
  assert.equal(unreachable.code, 1);
  assert.equal(unreachable.stderr.trim(), 'pushhook send: the first request refused: Couldn\'t connect to server');
  // Out of time before the count: how many never went, and why.
  const site = await serve.createSite('Timed');
  const timed = await run(fx, ['send', '--server', serve.baseUrl, '--key', site.ingest_key, '--count', '3',
    '--rate', '2', '--max-seconds', '0.5']);
  assert.equal(timed.code, 1, timed.stderr);
  assert.match(timed.stdout, /"accepted":1,"refused":0,"errors":0,"not_sent":2,/);
  assert.equal(timed.stderr.trim(), 'pushhook send: --max-seconds 0.5 ran out with 2 of 3 events not sent');
});

itest('a second serve, or migrate, on a database a serve is using exits 2 and names its pid', async (fx) => {
  const first = await fx.startServe();
  const site = await first.createSite('First');
  const db = path.join(first.dataDir, 'pushhook.db');
  const escaped = db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const inUse = new RegExp(`the database ${escaped} is in use by another pushhook process \\(pid ${first.pid}\\): ` +
    'an SQLite database is served by one process at a time');
  const env = { PUSHHOOK_ADMIN_TOKEN: first.adminToken };
  assertStartRefused(await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', first.dataDir], { env }),
    new RegExp(`^${inUse.source}$`), 'serve');
  assertBadConfig(await run(fx, ['migrate', '--data-dir', first.dataDir], { env }), inUse, 'migrate');
  expectStatus(await first.ingest(site.ingest_key, [makeEvent(1)]), 202, 'the first one still takes events');
  // The lock goes with the process that held it.
  await stop(first, 'SIGTERM');
  const after = await run(fx, ['migrate', '--data-dir', first.dataDir], { env });
  assert.equal(after.code, 0, after.stderr);
});

itest('a --database that is not an SQLite database, or has no folder, exits 2 saying so', async (fx) => {
  const dir = fx.tempDir('pushhook-notdb-');
  const notDb = path.join(dir, 'notes.db');
  fs.writeFileSync(notDb, 'these are notes, not a database\n');
  const env = { PUSHHOOK_ADMIN_TOKEN: 'tok', PUSHHOOK_SECRETS_KEY: Buffer.alloc(32, 7).toString('base64') };
  const reason = `${notDb} is not an SQLite database (is it the file serve uses?)`;
  const serveArgs = ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--database', `sqlite://${notDb}`];
  assertStartRefused(await run(fx, serveArgs, { env }), reason, serveArgs.join(' '));
  const migrateArgs = ['migrate', '--database', `sqlite://${notDb}`];
  assertBadConfig(await run(fx, migrateArgs, { env }), new RegExp(escapeRegExp(reason)), migrateArgs.join(' '));
  const nowhere = ['migrate', '--database', `sqlite://${path.join(dir, 'no', 'x.db')}`];
  assertBadConfig(await run(fx, nowhere), /cannot open database .*no\/x\.db: unable to open database file \(does its folder exist, and may pushhook write there\?\)/, nowhere.join(' '));
});

itest('a misspelt option is named, even where a required one is missing', async (fx) => {
  for (const [args, pattern] of [
    [['receive', '--secrett', 'whsec_x'], /^pushhook: The following argument was not expected: --secrett$/],
    [['beacon', '--sitee=s', '--cid', 'c'], /^pushhook: The following argument was not expected: --sitee$/],
    [['receive'], /^pushhook: --secret is required$/],
  ]) {
    assertBadConfig(await run(fx, args, { timeoutMs: 5_000 }), pattern, args.join(' '));
  }
});
