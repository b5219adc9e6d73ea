// Figure 5: a backlog built with the receiver down, then drained.

import fs from 'node:fs';
import path from 'node:path';

import { opts } from '../lib/context.mjs';
import { freePort, makeDir, removeDir, runCommand, sleep } from '../lib/processes.mjs';
import { Receiver, Serve, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export async function figureBacklog() {
  const runs = [];
  for (let rep = 0; rep < opts.reps; ++rep) {
    const dir = makeDir(`fig5-${rep}`);
    const serveArgs = ['--retry-schedule', '1h', '--max-backlog', String(opts.backlog * 2)];
    let serve = await Serve.start(dir, serveArgs);
    let receiver;
    try {
      const site = await serve.createSite();
      const port = await freePort(); // closed: nothing listens there until the receiver starts
      const ep = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/down` });
      const t0 = Date.now();
      const sent = await send(serve, site.ingest_key, {
        count: opts.backlog, batch: 1000, connections: 2, maxSeconds: opts.smoke ? 30 : 300,
      });
      if (sent.accepted !== opts.backlog) throw new Error(`backlog: ${sent.accepted} of ${opts.backlog} accepted: ${JSON.stringify(sent)}`);
      const ingestSeconds = (Date.now() - t0) / 1000;
      await sleep(1000); // let the dispatcher take in the last commits
      const mem = serve.rssKiB();
      await serve.stop();
      const states = await pendingStates(path.join(dir, 'pushhook.db'));
      receiver = await Receiver.start([ep.secret], { listen: `127.0.0.1:${port}`, out: path.join(dir, 'first.db') });
      const restartAt = Date.now();
      serve = await Serve.start(dir, serveArgs, 'serve-restart');
      const readySeconds = (serve.readyAt - restartAt) / 1000;
      const memAfterRestart = serve.rssKiB();
      const waited = await receiver.waitStored(1, 60_000);
      if (waited.timedOut) throw new Error('backlog: no delivery within 60 s of the restart');
      await serve.stop();
      await receiver.stop();
      const q = await runCommand('sqlite3', 'sqlite3', [path.join(dir, 'first.db'), 'SELECT min(received_at_ms) FROM received'], { timeoutMs: 30_000 });
      const firstAt = Number(q.stdout.trim());
      const r = {
        pending: opts.backlog,
        ingest_seconds: ingestSeconds,
        rss_mib: mem.rss / 1024,
        peak_rss_mib: mem.hwm / 1024,
        rss_after_restart_mib: memAfterRestart.rss / 1024,
        listening_seconds: (serve.listeningAt - restartAt) / 1000,
        ready_seconds: readySeconds,
        first_delivery_seconds: (firstAt - restartAt) / 1000,
        db_mib: dirSizeMiB(dir),
        messages_before_restart: states,
      };
      runs.push(r);
      log(`fig 5 rep ${rep + 1}: ${opts.backlog} pending: RSS ${r.rss_mib.toFixed(1)} MiB (peak ${r.peak_rss_mib.toFixed(1)}), ` +
        `ready ${r.ready_seconds.toFixed(2)} s, first delivery ${r.first_delivery_seconds.toFixed(2)} s after restart`);
    } finally {
      if (receiver) await receiver.stop();
      await serve.stop();
      removeDir(dir);
    }
  }
  results.figures.backlog = {
    runs,
    median: {
      rss_mib: median(runs.map((r) => r.rss_mib)),
      peak_rss_mib: median(runs.map((r) => r.peak_rss_mib)),
      ready_seconds: median(runs.map((r) => r.ready_seconds)),
      first_delivery_seconds: median(runs.map((r) => r.first_delivery_seconds)),
    },
  };
}

// How the messages stand in serve's SQLite file (pending = status 0; attempted ones failed once
// against the closed port and wait for their 1 h retry). Best effort: it reads serve's private
// schema, so a change there gives null here rather than a failed figure.
export async function pendingStates(db) {
  try {
    const q = await runCommand('sqlite3', 'sqlite3', ['-separator', ' ', db,
      'SELECT count(*), sum(attempts = 0) FROM messages WHERE status = 0; SELECT count(*) FROM messages'], { timeoutMs: 60_000 });
    const [[pending, neverAttempted], [all]] = q.stdout.trim().split('\n').map((l) => l.split(' ').map(Number));
    return { all, pending, never_attempted: neverAttempted };
  } catch {
    return null;
  }
}

export function dirSizeMiB(dir) {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, name));
    if (st.isFile()) total += st.size;
  }
  return total / (1 << 20);
}

// Figure 6: a receiver that answers after 200 ms; Little's law says max_in_flight / 0.2 s.
