// Figure 3: end to end, from POST /v1/events to the receiver's acknowledgement.

import fs from 'node:fs';
import path from 'node:path';

import { cpuPerItem, threadCpuSeconds } from '../lib/cpu.mjs';
import { SIZES, opts } from '../lib/context.mjs';
import { startNginx } from '../lib/nginx_wrk.mjs';
import { freePort, makeDir, removeDir, sleep, stopChild } from '../lib/processes.mjs';
import { Receiver, Serve, send } from '../lib/pushhook.mjs';
import { finishPerf, log, maybePerf, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export class EndToEnd {
  static async create(label, endpoints, { sink = 'receive', maxInFlight, delay, endpoint = {} } = {}) {
    const e = new EndToEnd();
    Object.assign(e, { label, endpoints, sink });
    e.dir = makeDir(label);
    e.serve = await Serve.start(e.dir);
    try {
      e.site = await e.serve.createSite();
      // The receiver needs the secrets, known only once the endpoints exist: take a port, create
      // the endpoints pointing there, then start the receiver on it.
      let port;
      e.accessLog = path.join(e.dir, 'access.log');
      if (sink === 'nginx') {
        e.nginx = await startNginx(`${label}-nginx`, { accessLog: e.accessLog });
        port = e.nginx.port;
      } else {
        port = await freePort();
      }
      const setupStart = Date.now();
      const created = await e.serve.createEndpoints(e.site.id, endpoints, (i) => ({
        url: `http://127.0.0.1:${port}/e/${i}`,
        ...(maxInFlight ? { max_in_flight: maxInFlight } : {}),
        ...endpoint,
      }));
      e.setupSeconds = (Date.now() - setupStart) / 1000;
      e.created = created;
      if (sink !== 'nginx') {
        e.receiver = await Receiver.start(created.map((x) => x.secret), { listen: `127.0.0.1:${port}`, delay });
      }
    } catch (err) {
      await e.close();
      throw err;
    }
    return e;
  }

  // What the sink has taken so far, and when the `n`-th of what it takes after `baseline`
  // arrived (null until it has).
  taken() {
    if (this.receiver) return this.receiver.counts.stored;
    return fs.existsSync(this.accessLog) ? Math.floor(fs.statSync(this.accessLog).size / 15) : 0; // "1795817164.753\n"
  }

  // Sends `events` events in batches as fast as they are taken; timed from the first send until
  // the sink has taken events x endpoints more payloads.
  async run(events, { timeoutMs, perfLabel } = {}) {
    const { serve, receiver } = this;
    const baseline = this.taken();
    const target = events * this.endpoints;
    const batch = Math.max(1, Math.min(100, events));
    const perf = perfLabel ? await maybePerf(perfLabel, serve.h.pid, 5) : null;
    const cpuBefore = this.cpuByThread();
    const start = Date.now();
    const sent = await send(serve, this.site.ingest_key, { count: events, batch, connections: 4, maxSeconds: 120 });
    const sentAt = Date.now();
    if (sent.accepted !== events) throw new Error(`end to end: only ${sent.accepted} of ${events} events accepted: ${JSON.stringify(sent)}`);
    let r;
    const deadline = Date.now() + timeoutMs;
    while (this.taken() < baseline + target && Date.now() < deadline) {
      if (receiver?.h.exitInfo || this.nginx?.h.exitInfo) throw new Error(`${this.sink} exited during a run`);
      await sleep(20);
    }
    const timedOut = this.taken() < baseline + target;
    if (receiver) {
      const crossing = receiver.crossing(baseline + target, start, baseline);
      const seconds = ((crossing ? crossing.estimate : Date.now()) - start) / 1000;
      r = {
        stored: Math.min(receiver.counts.stored - baseline, target),
        seconds,
        seconds_bounds: crossing ? [(crossing.lower - start) / 1000, (crossing.upper - start) / 1000] : null,
        receiver: { received: receiver.counts.received, stored: receiver.counts.stored,
          duplicates: receiver.counts.duplicates, rejected: receiver.counts.rejected },
      };
    } else {
      await sleep(300); // the access log's flush interval: the file then holds every line
      const times = fs.readFileSync(this.accessLog, 'utf8').trim().split('\n').slice(baseline)
        .map((x) => Number(x) * 1000).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
      const end = times.length >= target ? times[target - 1] : Date.now();
      r = { stored: Math.min(times.length, target), seconds: (end - start) / 1000 };
    }
    r.cpu_us_per_webhook = cpuPerItem(cpuBefore, this.cpuByThread(), r.stored);
    await finishPerf(perf);
    return {
      sink: this.sink,
      endpoints: this.endpoints,
      events,
      webhooks: target,
      timed_out: timedOut,
      ...r,
      webhooks_per_second: r.stored / r.seconds,
      endpoint_setup_seconds: this.setupSeconds,
      ingest_seconds: (sentAt - start) / 1000,
      ingest_events_per_second: sent.events_per_second,
      serve_rss_kib: serve.rssKiB().rss,
    };
  }

  // CPU seconds by thread name of serve and of the receiver.
  cpuByThread() {
    return {
      serve: threadCpuSeconds(this.serve.h.pid),
      ...(this.receiver ? { receive: threadCpuSeconds(this.receiver.h.pid) } : {}),
    };
  }

  async close() {
    if (this.receiver) await this.receiver.stop();
    if (this.nginx) await stopChild(this.nginx.h, 'SIGTERM', 5000);
    if (this.serve) await this.serve.stop();
    removeDir(this.dir);
  }
}

export async function figureEndToEnd() {
  const many = SIZES.manyEndpoints;
  // The figure (sink: pushhook receive) and its diagnostic twin (sink: nginx), interleaved.
  const variants = [['receive', 1], ['receive', many], ['nginx', 1], ['nginx', many]];
  const key = (sink, endpoints) => `${sink}:${endpoints}`;
  const runs = Object.fromEntries(variants.map(([s, e]) => [key(s, e), []]));
  const webhooksFor = {};
  const setups = {};
  try {
    for (const [sink, endpoints] of variants) {
      const k = key(sink, endpoints);
      setups[k] = await EndToEnd.create(`fig3-${sink}-${endpoints}`, endpoints, { sink });
      if (SIZES.e2eWebhooks) {
        webhooksFor[k] = SIZES.e2eWebhooks;
        continue;
      }
      // A short probe (also the warm-up) sizes the measured runs to last about e2eSeconds. It
      // is smaller for many endpoints on one receiver: all of its messages go out at once, and
      // a receiver slower than serve's delivery timeout turns a big probe into retries.
      const probeWebhooks = sink === 'receive' && endpoints > 1 ? SIZES.e2eProbeWebhooks / 4 : SIZES.e2eProbeWebhooks;
      let probe = await setups[k].run(Math.max(1, Math.round(probeWebhooks / endpoints)), { timeoutMs: 60_000 });
      // On a fast machine that probe is over in a fraction of a second, most of it spent opening
      // connections (one or more per endpoint), so it underestimates the rate and the runs come
      // out short. A second probe of about two seconds' worth at the first one's rate sizes them.
      const second = Math.max(endpoints, Math.round(probe.webhooks_per_second * 2));
      probe = await setups[k].run(Math.max(1, Math.round(second / endpoints)), { timeoutMs: 60_000 });
      webhooksFor[k] = Math.max(endpoints, Math.round(probe.webhooks_per_second * SIZES.e2eSeconds));
      log(`fig 3 probe, ${endpoints} endpoint(s) to ${sink}: ${probe.webhooks_per_second.toFixed(0)} webhooks/s ` +
        `-> ${webhooksFor[k]} webhooks per run (endpoints made in ${probe.endpoint_setup_seconds.toFixed(1)} s)` +
        `${probe.timed_out ? ' (probe timed out)' : ''}`);
    }
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const [sink, endpoints] of variants) {
        const k = key(sink, endpoints);
        const events = Math.max(1, Math.round(webhooksFor[k] / endpoints));
        const r = await setups[k].run(events, {
          timeoutMs: Math.max(60_000, SIZES.e2eSeconds * 4000),
          perfLabel: rep === 0 && sink === 'receive' ? `fig3-e2e-${endpoints}` : null,
        });
        runs[k].push(r);
        log(`fig 3 rep ${rep + 1}, ${endpoints} endpoint(s) to ${sink}: ${r.webhooks_per_second.toFixed(0)} webhooks/s ` +
          `(${r.stored}/${r.webhooks} in ${r.seconds.toFixed(2)} s; ingest took ${r.ingest_seconds.toFixed(2)} s` +
          `${r.receiver ? `; receiver duplicates ${r.receiver.duplicates}` : ''}${r.timed_out ? '; TIMED OUT' : ''})`);
        if (r.stored === 0) throw new Error(`figure 3: nothing delivered to ${endpoints} endpoint(s) on ${sink}`);
        if (r.timed_out) results.warnings.push(`figure 3: ${endpoints} endpoint(s) to ${sink}: timed out with ${r.stored}/${r.webhooks}`);
      }
    }
  } finally {
    for (const setup of Object.values(setups)) await setup.close();
  }
  const nginx = results.figures.nginx?.median_rps;
  const med = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v.map((r) => r.webhooks_per_second))]));
  results.figures.end_to_end = {
    runs,
    many_endpoints: many,
    median_webhooks_per_second: med,
    ratio_to_nginx: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, v / nginx])),
    ratio_many_to_1: {
      receive: med[key('receive', many)] / med[key('receive', 1)],
      nginx: med[key('nginx', many)] / med[key('nginx', 1)],
    },
  };
}

// Figure 4: latency from occurred_at (stamped by `send` as it builds the request) to the
// receiver's received_at_ms, at two offered rates, extended payloads stored in SQLite.
