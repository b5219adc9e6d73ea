// Figure 8: PostgreSQL scale-out. 1, 2 and 3 serve nodes on one PostgreSQL (its own throw-away
// server, made by scripts/pg-cluster with pg_stat_statements loaded), SQLite beside them: batched
// ingest, end-to-end deliveries, and what PostgreSQL does per delivered message.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';

import { REPO_ROOT, SIZES, opts } from '../lib/context.mjs';
import { atExit, freePort, makeDir, removeDir, runCommand, sleep, tail } from '../lib/processes.mjs';
import { Receiver, Serve, expectOk, httpCall, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { cpuSeconds } from '../lib/cpu.mjs';
import { median } from '../lib/stats.mjs';

export const PG_CLUSTER = path.join(REPO_ROOT, 'scripts', 'pg-cluster');
export const PG_SERVER_SETTINGS = '-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all';
// Divisible by 1, 2 and 3, so that every node owns the same number. With 4, 3 nodes settled at
// 2 / 2 / 0: each node takes up to its fair share, ceil(4 / 3) = 2, and one node stayed idle.
export const PG_ENDPOINTS = 6;
export const PG_LEASE = '10s';
export const PG_POOL = 8;
export const postgresRunning = new Set(); // dirs of PostgreSQL servers we started and have not stopped
export const postgresDirs = new Set(); // and their folders, removed at the end (not inside tmpRoot: see below)

// Stops our PostgreSQL servers at once; synchronous, so that it works in an 'exit' handler.
export function stopPostgresNow() {
  for (const dir of postgresRunning) {
    spawnSync(PG_CLUSTER, ['kill', dir], { stdio: 'ignore', timeout: 30_000 });
    postgresRunning.delete(dir);
  }
}
atExit({
  stop: stopPostgresNow,
  remove: () => {
    for (const dir of postgresDirs) fs.rmSync(dir, { recursive: true, force: true });
  },
});

// PostgreSQL's programs (the newest installed version, as scripts/pg-cluster picks), or null
// when something figure 8 needs is missing.
export function postgresTools() {
  let versions = [];
  try {
    versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
  } catch {
    return null;
  }
  const v = versions.pop();
  if (!v) return null;
  const bin = `/usr/lib/postgresql/${v}/bin`;
  const tools = { version: v, psql: `${bin}/psql`, pgbench: `${bin}/pgbench` };
  const needed = [`${bin}/pg_ctl`, tools.psql, tools.pgbench, `/usr/lib/postgresql/${v}/lib/pg_stat_statements.so`];
  return needed.every((f) => fs.existsSync(f)) ? tools : null;
}

export class PgServer {
  static async start(tools) {
    const s = new PgServer();
    s.tools = tools;
    // Its own folder in the system's temporary folder, not in tmpRoot: the server runs as the
    // postgres user when we are root, and tmpRoot is private to us.
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-bench-pg-'));
    postgresDirs.add(s.dir);
    postgresRunning.add(s.dir);
    const r = await runCommand('pg-cluster', PG_CLUSTER, ['start', s.dir], {
      timeoutMs: 120_000, env: { PG_CLUSTER_OPTS: PG_SERVER_SETTINGS },
    });
    if (r.code !== 0) throw new Error(`scripts/pg-cluster start failed (exit ${r.code}): ${tail(r.stderr)}\n${s.logTail()}`);
    s.url = r.stdout.trim().split('\n').pop();
    // The statistics views live in the `postgres` database, so that reading them adds nothing to
    // the counts of the databases measured.
    await s.psql(s.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return s;
  }

  logTail() {
    try {
      return tail(fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8'));
    } catch {
      return '';
    }
  }

  // Runs `sql`; resolves to its rows, fields split at tabs.
  async psql(url, sql) {
    const r = await runCommand('psql', this.tools.psql, [url, '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { timeoutMs: 120_000, env: { PGCONNECT_TIMEOUT: '10' } });
    if (r.code !== 0) throw new Error(`psql failed (exit ${r.code}) on "${sql.slice(0, 80)}": ${tail(r.stderr)}`);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
  }

  databaseUrl(name) {
    const u = new URL(this.url);
    u.pathname = `/${name}`;
    return u.toString();
  }

  async createDatabase(name) {
    await this.psql(this.url, `CREATE DATABASE ${name}`);
    return this.databaseUrl(name);
  }

  async dropDatabase(name) {
    await this.psql(this.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }

  async resetStatements() {
    await this.psql(this.url, 'SELECT pg_stat_statements_reset()');
  }

  async transactions(database) {
    const [[commits, rollbacks]] = await this.psql(this.url,
      `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = '${database}'`);
    return { commits: Number(commits), rollbacks: Number(rollbacks) };
  }

  // Every statement run in `database` since the last reset: calls, rows, server time, whether
  // a client sent it (toplevel) or a function ran it, and its normalised text on one line.
  async statements(database) {
    const rows = await this.psql(this.url, `SELECT s.calls, s.rows, s.total_exec_time, s.toplevel,
        regexp_replace(s.query, '\\s+', ' ', 'g')
      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = '${database}' ORDER BY s.calls DESC`);
    return rows.map(([calls, nrows, ms, toplevel, ...query]) => ({
      calls: Number(calls), rows: Number(nrows), exec_ms: Number(ms), toplevel: toplevel === 't', query: query.join('\t'),
    }));
  }

  async stop() {
    // remove also deletes the server's files when pg-cluster had to keep them outside dir.
    const command = opts.keep ? 'stop' : 'remove';
    const r = await runCommand('pg-cluster', PG_CLUSTER, [command, this.dir], { timeoutMs: 120_000 });
    postgresRunning.delete(this.dir);
    if (r.code !== 0) log(`scripts/pg-cluster ${command}: exit ${r.code}: ${tail(r.stderr)}`);
    if (!opts.keep) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      postgresDirs.delete(this.dir);
    }
  }
}

// One setting of figure 8: `nodes` serve nodes on a fresh PostgreSQL database, or one serve on
// a fresh SQLite file. The first node starts alone (it makes the schema), the others together.
export class Fig8Cluster {
  static async start(pg, variant, label) {
    const c = new Fig8Cluster();
    Object.assign(c, { pg, variant, label, nodes: [], dirs: [] });
    try {
      if (variant.store === 'sqlite') {
        c.dirs.push(makeDir(label));
        c.nodes.push(await Serve.start(c.dirs[0], [], `${label}-serve`));
        return c;
      }
      c.database = label.replace(/[^a-z0-9]/g, '_');
      c.databaseUrl = await pg.createDatabase(c.database);
      const secretsKey = randomBytes(32).toString('base64');
      const startNode = async (i) => {
        const dir = makeDir(`${label}-node-${i + 1}`);
        c.dirs.push(dir);
        const node = await Serve.start(dir, ['--database', c.databaseUrl, '--node-id', `node-${i + 1}`,
          '--lease', PG_LEASE, '--database-pool', String(PG_POOL)], `${label}-node-${i + 1}`,
        { env: { PUSHHOOK_SECRETS_KEY: secretsKey } });
        node.nodeId = `node-${i + 1}`;
        return node;
      };
      c.nodes.push(await startNode(0));
      c.nodes.push(...await Promise.all(Array.from({ length: variant.nodes - 1 }, (_, i) => startNode(i + 1))));
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  // Waits until the nodes own all `count` endpoints between them, one owner each, and (when
  // there are enough endpoints) every node owns some; returns {nodeId: owned count}.
  async waitOwnership(count, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const owned = {};
      const all = [];
      for (const node of this.nodes) {
        const view = await expectOk(httpCall(node.base, 'GET', '/v1/cluster'), 'GET /v1/cluster');
        owned[node.nodeId] = view.owned_endpoints.length;
        all.push(...view.owned_endpoints);
      }
      const complete = all.length === count && new Set(all).size === count;
      const spread = count < this.nodes.length || Object.values(owned).every((n) => n > 0);
      if (complete && spread) return { owned, complete, spread };
      if (Date.now() > deadline) return { owned, complete, spread };
      await sleep(200);
    }
  }

  // Warnings and errors the nodes have logged, but for --dev's own.
  problems() {
    const out = [];
    for (const node of this.nodes) {
      for (const l of node.h.logs) {
        if ((l.level === 'warn' || l.level === 'error') && !String(l.msg).startsWith('--dev')) {
          const { _at, ...line } = l;
          out.push({ node: node.nodeId ?? 'sqlite', ...line });
        }
      }
    }
    return out;
  }

  async close() {
    for (const node of this.nodes) await node.stop();
    if (this.database) await this.pg.dropDatabase(this.database).catch((err) => log(`drop database: ${err.message}`));
    for (const dir of this.dirs) removeDir(dir);
  }
}

// CPU seconds of the PostgreSQL server: the postmaster with its reaped children, plus every live
// child (the backends of the pools, the WAL writer, the checkpointer, ...).
export function postgresCpuSeconds(pg) {
  let postmaster;
  try {
    postmaster = Number(fs.readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  let total = cpuSeconds(postmaster, { children: true })?.seconds ?? 0;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const c = cpuSeconds(Number(name));
    if (c && c.ppid === postmaster) total += c.seconds;
  }
  return total;
}

// `total` events spread over `nodes` as evenly as they go.
export function spread(total, nodes) {
  return nodes.map((_, i) => Math.floor(total / nodes.length) + (i < total % nodes.length ? 1 : 0));
}

// 8a: batches of 1,000 from one `send` per node (2 connections each), all at once.
export async function fig8Ingest(pg, variant, rep) {
  const c = await Fig8Cluster.start(pg, variant, `fig8i_${variant.key}_${rep}`);
  try {
    const site = await c.nodes[0].createSite();
    const counts = SIZES.pgIngestEvents
      ? spread(SIZES.pgIngestEvents, c.nodes)
      : c.nodes.map(() => 1_000_000 * Math.ceil(opts.duration));
    const reports = await Promise.all(c.nodes.map((node, i) => send(node, site.ingest_key, {
      count: counts[i], batch: 1000, connections: variant.connections ?? 2, maxSeconds: opts.smoke ? 30 : opts.duration,
    })));
    const accepted = reports.reduce((a, r) => a + r.accepted, 0);
    const seconds = Math.max(...reports.map((r) => r.seconds));
    if (accepted === 0) throw new Error(`figure 8: ${variant.key}: ingest accepted nothing: ${JSON.stringify(reports)}`);
    const r = {
      accepted,
      refused: reports.reduce((a, x) => a + x.refused, 0),
      errors: reports.reduce((a, x) => a + x.errors, 0),
      seconds,
      events_per_second: accepted / seconds,
      connections_per_node: variant.connections ?? 2,
      per_node: reports,
      problems: c.problems(),
    };
    log(`fig 8 rep ${rep + 1}: ingest, ${variant.label}: ${r.events_per_second.toFixed(0)} events/s ` +
      `(${accepted} accepted, ${r.refused} refused, ${r.errors} errors; per node ` +
      `${reports.map((x) => x.events_per_second.toFixed(0)).join(' / ')})`);
    return r;
  } finally {
    await c.close();
  }
}

// 8b: 6 endpoints on one receiver; E events posted spread over the nodes, timed until the
// receiver has stored E x 6. On PostgreSQL, the statements and transactions of the run.
export async function fig8EndToEnd(pg, variant, rep) {
  const c = await Fig8Cluster.start(pg, variant, `fig8e_${variant.key}_${rep}`);
  let receiver;
  try {
    const site = await c.nodes[0].createSite();
    const port = await freePort();
    const created = await c.nodes[0].createEndpoints(site.id, PG_ENDPOINTS, (i) => ({ url: `http://127.0.0.1:${port}/e/${i}` }));
    receiver = await Receiver.start(created.map((x) => x.secret), { listen: `127.0.0.1:${port}`, name: `${c.label}-receive` });
    let ownership = null;
    let ownershipSeconds = null;
    if (variant.store === 'postgres') {
      const asked = Date.now();
      ownership = await c.waitOwnership(PG_ENDPOINTS, 30_000);
      ownershipSeconds = (Date.now() - asked) / 1000;
      if (!ownership.complete || !ownership.spread) {
        results.warnings.push(`figure 8: ${variant.label}: ownership after 30 s: ${JSON.stringify(ownership.owned)}`);
      }
      // Idle backends flush their transaction counts within 10 s; the setup's few that may come
      // in after this snapshot add a handful of commits to the run's thousands.
      await sleep(1500);
      await pg.resetStatements();
    }
    const before = variant.store === 'postgres' ? await pg.transactions(c.database) : null;
    const cpu = () => ({
      serve: c.nodes.reduce((a, n) => a + (cpuSeconds(n.h.pid)?.seconds ?? 0), 0),
      receiver: cpuSeconds(receiver.h.pid)?.seconds ?? 0,
      postgres: variant.store === 'postgres' ? postgresCpuSeconds(pg) : null,
    });
    const cpuBefore = cpu();
    const events = SIZES.pgEndToEndEvents;
    const target = events * PG_ENDPOINTS;
    const start = Date.now();
    const reports = await Promise.all(c.nodes.map((node, i) => send(node, site.ingest_key, {
      count: spread(events, c.nodes)[i], batch: 100, connections: 2, maxSeconds: 120,
    })));
    const accepted = reports.reduce((a, r) => a + r.accepted, 0);
    if (accepted !== events) throw new Error(`figure 8: ${variant.key}: ${accepted} of ${events} events accepted: ${JSON.stringify(reports)}`);
    const ingestSeconds = (Date.now() - start) / 1000;
    const waited = await receiver.waitStored(target, opts.smoke ? 60_000 : 180_000);
    const cpuAfter = cpu();
    const crossing = receiver.crossing(target, start);
    const seconds = ((crossing ? crossing.estimate : Date.now()) - start) / 1000;
    const stored = Math.min(receiver.counts.stored, target);
    // CPU per delivered message over the run (until the receiver had everything, give or take
    // the 20 ms poll), by process; `send` is not counted.
    const cpuUs = (k) => (cpuAfter[k] === null ? null : ((cpuAfter[k] - cpuBefore[k]) * 1e6) / Math.max(1, stored));
    const r = {
      events,
      endpoints: PG_ENDPOINTS,
      webhooks: target,
      stored,
      timed_out: waited.timedOut,
      seconds,
      seconds_bounds: crossing ? [(crossing.lower - start) / 1000, (crossing.upper - start) / 1000] : null,
      webhooks_per_second: stored / seconds,
      ingest_seconds: ingestSeconds,
      ownership: ownership?.owned ?? null,
      ownership_seconds: ownershipSeconds,
      cpu_us_per_message: { serve_nodes: cpuUs('serve'), postgres: cpuUs('postgres'), receiver: cpuUs('receiver') },
      wall_seconds_to_last: (Date.now() - start) / 1000,
    };
    if (variant.store === 'postgres') {
      // pg_stat_statements counts as each statement ends; pg_stat_database only when a backend
      // flushes its counts, which an idle backend may put off for 10 s. A backend that exits
      // flushes them: stop the nodes (the run is over), then read the transactions.
      const statements = await pg.statements(c.database);
      for (const node of c.nodes) await node.stop();
      const after = await pg.transactions(c.database);
      const delivered = Math.max(1, stored);
      const top = statements.filter((s) => s.toplevel);
      const sum = (list, f) => list.reduce((a, s) => a + f(s), 0);
      r.db = {
        delivered,
        statements: sum(top, (s) => s.calls),
        statements_per_message: sum(top, (s) => s.calls) / delivered,
        nested_statements_per_message: sum(statements.filter((s) => !s.toplevel), (s) => s.calls) / delivered,
        exec_ms_per_message: sum(top, (s) => s.exec_ms) / delivered,
        commits: after.commits - before.commits,
        commits_per_message: (after.commits - before.commits) / delivered,
        rollbacks: after.rollbacks - before.rollbacks,
        by_statement: top.slice(0, 16).map((s) => ({
          // The whole text: two statements can share a long beginning (LoadDelivery and
          // LoadDeliveries differ only in their WHERE).
          query: s.query, calls: s.calls, per_message: s.calls / delivered, rows: s.rows, exec_ms: s.exec_ms,
        })),
      };
    }
    // After the figure's clock, so that it costs nothing: the receiver's duplicates tell of
    // deliveries sent twice.
    r.receiver = { ...receiver.counts };
    delete r.receiver._at;
    r.problems = c.problems();
    log(`fig 8 rep ${rep + 1}: end to end, ${variant.label}: ${r.webhooks_per_second.toFixed(0)} deliveries/s ` +
      `(${stored}/${target} in ${seconds.toFixed(2)} s; ingest ${ingestSeconds.toFixed(2)} s; duplicates ${r.receiver.duplicates}` +
      `${r.ownership ? `; owned ${JSON.stringify(r.ownership)} after ${r.ownership_seconds.toFixed(1)} s` : ''}` +
      `; CPU µs/message serve ${r.cpu_us_per_message.serve_nodes.toFixed(0)}` +
      `${r.cpu_us_per_message.postgres === null ? '' : ` postgres ${r.cpu_us_per_message.postgres.toFixed(0)}`}` +
      ` receiver ${r.cpu_us_per_message.receiver.toFixed(0)}` +
      `${r.db ? `; ${r.db.statements_per_message.toFixed(2)} statements and ${r.db.commits_per_message.toFixed(2)} commits per message` : ''}` +
      `${r.problems.length ? `; ${r.problems.length} warn/error log lines` : ''}${r.timed_out ? '; TIMED OUT' : ''})`);
    if (stored === 0) throw new Error(`figure 8: ${variant.key}: nothing delivered`);
    if (r.timed_out) results.warnings.push(`figure 8: end to end, ${variant.label}: timed out with ${stored}/${target}`);
    return r;
  } finally {
    if (receiver) await receiver.stop();
    await c.close();
  }
}

// PostgreSQL's own capacity on this machine, for the projection: pgbench select-only (-S, one
// SELECT per transaction) and simple-update (-N: BEGIN, UPDATE, SELECT, INSERT, END: five
// statements and one durable commit per transaction), 8 clients on 2 threads.
export async function fig8Pgbench(pg) {
  const database = 'fig8_pgbench';
  const url = await pg.createDatabase(database);
  const bench = async (args, timeoutMs) => {
    const r = await runCommand('pgbench', pg.tools.pgbench, [...args, url], { timeoutMs, env: { PGCONNECT_TIMEOUT: '10' } });
    if (r.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed (exit ${r.code}): ${tail(r.stderr)} ${tail(r.stdout)}`);
    return r.stdout;
  };
  try {
    await bench(['-i', '-q', '-s', String(SIZES.pgbenchScale)], 300_000);
    const runs = { select_only: [], simple_update: [] };
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const [key, flag] of [['select_only', '-S'], ['simple_update', '-N']]) {
        const out = await bench([flag, '-c', '8', '-j', '2', '-T', String(SIZES.pgbenchSeconds)], (SIZES.pgbenchSeconds + 60) * 1000);
        const tps = Number((out.match(/tps = ([\d.]+) \(without initial connection time\)/) || [])[1]);
        if (!Number.isFinite(tps)) throw new Error(`pgbench ${flag}: no tps in its output: ${tail(out)}`);
        runs[key].push(tps);
        log(`fig 8 rep ${rep + 1}: pgbench ${flag} -c 8 -j 2 -T ${SIZES.pgbenchSeconds}: ${tps.toFixed(0)} tps`);
      }
    }
    const selectTps = median(runs.select_only);
    const updateTps = median(runs.simple_update);
    return {
      scale: SIZES.pgbenchScale,
      seconds: SIZES.pgbenchSeconds,
      clients: 8,
      threads: 2,
      runs,
      select_only_tps: selectTps,
      select_only_statements_per_second: selectTps,
      simple_update_tps: updateTps,
      simple_update_statements_per_second: updateTps * 5,
    };
  } finally {
    await pg.dropDatabase(database).catch((err) => log(`drop database: ${err.message}`));
  }
}

// A statement in a table cell: its beginning, and its end when the middle is cut out (where
// statements that begin alike differ).
export function shortQuery(query) {
  const text = query.replace(/\s+/g, ' ').trim();
  return text.length <= 80 ? text : `${text.slice(0, 52)} … ${text.slice(-25)}`;
}

// Per-statement calls per message, the median over the repetitions (0 where a repetition did not
// run the statement), top `n` by that median.
export function topStatements(runs, n) {
  const keys = new Set(runs.flatMap((r) => r.db.by_statement.map((s) => s.query)));
  const rows = [...keys].map((query) => ({
    query: shortQuery(query),
    per_message: median(runs.map((r) => r.db.by_statement.find((s) => s.query === query)?.per_message ?? 0)),
  }));
  return rows.sort((a, b) => b.per_message - a.per_message).slice(0, n);
}

export async function figurePostgres() {
  const tools = postgresTools();
  if (!tools) {
    const why = 'PostgreSQL (server, psql, pgbench, pg_stat_statements) is not installed: scripts/install-deps installs it';
    if (opts.only?.has(8)) throw new Error(`figure 8: ${why}`);
    results.warnings.push(`figure 8 skipped: ${why}`);
    log(`fig 8 skipped: ${why}`);
    return;
  }
  const variants = [
    { key: 'sqlite', store: 'sqlite', nodes: 1, label: 'SQLite, 1 node' },
    ...SIZES.pgNodeCounts.map((n) => ({ key: `pg${n}`, store: 'postgres', nodes: n, label: `PostgreSQL, ${n} node${n > 1 ? 's' : ''}` })),
  ];
  // A control for ingest: one node with as many connections as the most nodes have between them,
  // to tell what more nodes bring from what more requests in flight bring.
  const most = Math.max(...SIZES.pgNodeCounts);
  const control = { key: `pg1c${2 * most}`, store: 'postgres', nodes: 1, connections: 2 * most,
    label: `PostgreSQL, 1 node, ${2 * most} connections (control)` };
  const ingestVariants = [...variants, control];
  const pg = await PgServer.start(tools);
  const ingest = Object.fromEntries(ingestVariants.map((v) => [v.key, []]));
  const endToEnd = Object.fromEntries(variants.map((v) => [v.key, []]));
  let pgbench = null;
  try {
    log(`fig 8: PostgreSQL ${tools.version} at ${pg.url}`);
    // Interleaved, as in the other figures: every setting once per repetition.
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const v of ingestVariants) ingest[v.key].push(await fig8Ingest(pg, v, rep));
    }
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const v of variants) endToEnd[v.key].push(await fig8EndToEnd(pg, v, rep));
    }
    pgbench = await fig8Pgbench(pg);
  } finally {
    await pg.stop();
  }
  const byVariant = {};
  for (const v of variants) {
    const e2e = endToEnd[v.key];
    const entry = {
      label: v.label,
      store: v.store,
      nodes: v.nodes,
      median_ingest_events_per_second: median(ingest[v.key].map((r) => r.events_per_second)),
      median_deliveries_per_second: median(e2e.map((r) => r.webhooks_per_second)),
      receiver_duplicates: e2e.reduce((a, r) => a + r.receiver.duplicates, 0),
      cpu_us_per_message: Object.fromEntries(['serve_nodes', 'postgres', 'receiver'].map((k) =>
        [k, median(e2e.map((r) => r.cpu_us_per_message[k]))])),
      problem_log_lines: [...ingest[v.key], ...e2e].reduce((a, r) => a + r.problems.length, 0),
    };
    if (v.store === 'postgres') {
      const perMessage = median(e2e.map((r) => r.db.statements_per_message));
      entry.db = {
        statements_per_message: perMessage,
        nested_statements_per_message: median(e2e.map((r) => r.db.nested_statements_per_message)),
        commits_per_message: median(e2e.map((r) => r.db.commits_per_message)),
        exec_ms_per_message: median(e2e.map((r) => r.db.exec_ms_per_message)),
        top_statements: topStatements(e2e, 8),
        statements: topStatements(e2e, 16),
      };
      // A projection, not a measurement: a database that runs C statements/s serves at most
      // C / (statements per message) deliveries/s, if nothing else (the nodes' CPU, locks,
      // fsync of commits) gives out first.
      entry.projection = {
        deliveries_per_second_per_10k_statements_per_second: 10_000 / perMessage,
        at_pgbench_select_only_capacity: pgbench ? pgbench.select_only_statements_per_second / perMessage : null,
        at_pgbench_simple_update_capacity: pgbench ? pgbench.simple_update_statements_per_second / perMessage : null,
      };
    }
    byVariant[v.key] = entry;
  }
  const controlIngest = {
    label: control.label,
    connections: control.connections,
    median_ingest_events_per_second: median(ingest[control.key].map((r) => r.events_per_second)),
  };
  results.figures.postgres = {
    postgres_version: tools.version,
    server_settings: `fsync=on synchronous_commit=on max_connections=200 ${PG_SERVER_SETTINGS}`,
    endpoints: PG_ENDPOINTS,
    lease: PG_LEASE,
    database_pool: PG_POOL,
    ingest: { batch: 1000, connections_per_node: 2, runs: ingest },
    end_to_end: { events: SIZES.pgEndToEndEvents, batch: 100, connections_per_node: 2, runs: endToEnd },
    pgbench,
    median: byVariant,
    ingest_control: controlIngest,
  };
}
