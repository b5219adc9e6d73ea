// PostgreSQL for the cluster tests: throw-away servers run by scripts/pg-cluster (on 127.0.0.1,
// in a temporary dir), fresh databases on them, and `pushhook serve` nodes sharing one database.
//
// When ctest has started a shared server (PUSHHOOK_TEST_POSTGRES_DIR, whose `url` file holds its
// URL), freshDatabase() makes a new database there for each test and drops it afterwards; a test
// that stops or kills the server itself asks for its own server ({ownServer: true}). Servers and
// databases are registered with the itest fixture (fx.onCleanup) and removed after the test,
// whatever its outcome; a server still running when the test process exits is killed then.
// PUSHHOOK_IT_KEEP=1 keeps the dirs (the server's log is <dir>/server.log) and the databases.

import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, expectStatus, randomToken } from './harness.mjs';

const execFileAsync = promisify(execFile);
const PG_CLUSTER = path.join(REPO_ROOT, 'scripts', 'pg-cluster');

// True when PostgreSQL's server binaries (for scripts/pg-cluster) and psql are installed.
export function postgresInstalled() {
  let serverBin = false;
  try {
    serverBin = fs.readdirSync('/usr/lib/postgresql').some((v) => fs.existsSync(`/usr/lib/postgresql/${v}/bin/pg_ctl`));
  } catch {
    serverBin = false;
  }
  return serverBin && spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0;
}

// Why the cluster tests cannot run here, or undefined: for node:test's `skip` option. A shared
// server counts as PostgreSQL being available for tests that do not need their own.
export function postgresSkipReason({ ownServer = false } = {}) {
  if (!ownServer && process.env.PUSHHOOK_TEST_POSTGRES_DIR) return undefined;
  return postgresInstalled() ? undefined : 'PostgreSQL is not installed (scripts/install-deps)';
}

async function pgCluster(command, dir) {
  try {
    const { stdout } = await execFileAsync(PG_CLUSTER, [command, dir], { timeout: 90_000 });
    return stdout.trim();
  } catch (err) {
    let log = '';
    try {
      log = fs.readFileSync(path.join(dir, 'server.log'), 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      // no log yet
    }
    throw new Error(`scripts/pg-cluster ${command} ${dir} failed: ${err.message}\n${err.stderr ?? ''}\n${log}`);
  }
}

// Servers we started and have not removed yet: dir -> server.
const liveServers = new Map();
process.on('exit', () => {
  for (const [dir, server] of liveServers) {
    spawnSync(PG_CLUSTER, ['kill', dir], { stdio: 'ignore', timeout: 30_000 });
    if (server.ownsDir && !process.env.PUSHHOOK_IT_KEEP) {
      spawnSync(PG_CLUSTER, ['remove', dir], { stdio: 'ignore', timeout: 30_000 });
    }
  }
});

// True when something accepts TCP connections on 127.0.0.1:port.
export function listening(port, timeoutMs = 1_000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

// Starts a PostgreSQL server in `dir` (a new temporary dir by default: it must be one that the
// `postgres` user can reach when the tests run as root, so not inside a 0700 dir of root's).
// Returns {dir, url, port, start(), stop(), kill(), running}: stop() is a fast shutdown, kill()
// an immediate one (a crash, as far as clients can tell), start() brings it back on the same
// port. After the test the server is stopped and its dir removed.
export async function startPostgres(fx, { dir } = {}) {
  const ownsDir = dir === undefined;
  const serverDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-pg-'));
  const server = {
    dir: serverDir,
    ownsDir,
    url: null,
    port: null,
    running: false,
    async start() {
      server.url = (await pgCluster('start', serverDir)).split('\n').pop();
      server.port = Number(new URL(server.url).port);
      server.running = true;
      return server.url;
    },
    async stop() {
      await pgCluster('stop', serverDir);
      server.running = false;
    },
    async kill() {
      await pgCluster('kill', serverDir);
      server.running = false;
    },
  };
  liveServers.set(serverDir, server);
  const remove = async () => {
    try {
      // remove: stops it and deletes its files, also those kept outside serverDir (pg-cluster).
      await pgCluster(ownsDir && !process.env.PUSHHOOK_IT_KEEP ? 'remove' : 'stop', serverDir);
    } finally {
      liveServers.delete(serverDir);
    }
  };
  try {
    await server.start();
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
  fx.onCleanup(remove);
  return server;
}

// Runs `sql` with psql against `url`; resolves to its unaligned output.
export async function psql(url, sql) {
  const { stdout } = await execFileAsync('psql', [url, '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    timeout: 30_000,
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
  });
  return stdout.trim();
}

// Makes a new, empty database on the server at `serverUrl`; resolves to its URL. With `fx`, the
// database is dropped after the test (its clients are gone by then).
export async function createDatabase(serverUrl, fx) {
  const name = `pushhook_it_${randomBytes(6).toString('hex')}`;
  await psql(serverUrl, `CREATE DATABASE ${name}`);
  fx?.onCleanup(async () => {
    if (!process.env.PUSHHOOK_IT_KEEP) await psql(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

// The URL of the server ctest started for all the tests, or null.
export function sharedPostgresUrl() {
  const dir = process.env.PUSHHOOK_TEST_POSTGRES_DIR;
  if (!dir) return null;
  return fs.readFileSync(path.join(dir, 'url'), 'utf8').trim();
}

// A fresh database for one test: {url, server}. On the shared server when there is one and the
// test does not need its own (server is then null); otherwise on a server of its own.
export async function freshDatabase(fx, { ownServer = false } = {}) {
  const shared = ownServer ? null : sharedPostgresUrl();
  if (shared) return { url: await createDatabase(shared, fx), server: null };
  const server = await startPostgres(fx);
  return { url: await createDatabase(server.url), server };
}

// Base64 of 32 random bytes: the PUSHHOOK_SECRETS_KEY every node of one database must share.
export function randomSecretsKey() {
  return randomBytes(32).toString('base64');
}

// Starts `count` `pushhook serve` nodes on `database`, named `${prefix}-0`, `${prefix}-1`, ...,
// all with the same operator token and secrets key. The first starts alone (it makes the
// schema), the others together. Each handle gets `nodeId`. Extra serve flags go in `args`.
export async function startNodes(fx, {
  database,
  count = 3,
  lease = '2s',
  prefix = 'node',
  adminToken = randomToken(),
  secretsKey = randomSecretsKey(),
  retrySchedule = Array(20).fill('200ms').join(','),
  args = [],
} = {}) {
  const startOne = async (i) => {
    const nodeId = `${prefix}-${i}`;
    const node = await fx.startServe({
      adminToken,
      retrySchedule,
      args: ['--database', database, '--lease', lease, '--node-id', nodeId, ...args],
      env: { PUSHHOOK_SECRETS_KEY: secretsKey },
    });
    node.nodeId = nodeId;
    return node;
  };
  const first = await startOne(0);
  const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => startOne(i + 1)));
  return [first, ...rest];
}

// GET /v1/cluster on `node`: {node_id, lease_ms, owned_endpoints, nodes}.
export async function clusterView(node) {
  return expectStatus(await node.api('GET', '/v1/cluster'), 200, `GET /v1/cluster on ${node.nodeId ?? node.baseUrl}`);
}

// Each node's own view of what it owns, taken one node after the other: {nodeId: [endpoint ids]}.
export async function ownership(nodes) {
  const out = {};
  for (const node of nodes) out[node.nodeId] = [...(await clusterView(node)).owned_endpoints].sort();
  return out;
}
