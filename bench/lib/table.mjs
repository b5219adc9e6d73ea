// The table bench/run prints: one row per figure, medians with their ratio to nginx.

import { opts } from './context.mjs';
import { results } from './results.mjs';
import { median } from './stats.mjs';

export function fmt(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// "serve 100 µs (ph-client 27, ...) + receive 38 µs (...)": medians over the runs, by thread.
export function cpuMedians(runs) {
  const withCpu = (runs ?? []).filter((r) => r.cpu_us_per_webhook);
  if (withCpu.length === 0) return null;
  const parts = [];
  for (const proc of Object.keys(withCpu[0].cpu_us_per_webhook)) {
    const names = [...new Set(withCpu.flatMap((r) => Object.keys(r.cpu_us_per_webhook[proc]?.threads ?? {})))];
    const threads = names
      .map((n) => [n, median(withCpu.map((r) => r.cpu_us_per_webhook[proc]?.threads?.[n] ?? 0))])
      .filter(([, us]) => us >= 0.5)
      .sort((a, b) => b[1] - a[1]);
    const total = median(withCpu.map((r) => r.cpu_us_per_webhook[proc]?.total ?? 0));
    parts.push(`${proc} ${fmt(total)} µs (${threads.map(([n, us]) => `${n} ${fmt(us)}`).join(', ')})`);
  }
  return parts.join(' + ');
}

export function tableRows() {
  const f = results.figures;
  const rows = [];
  const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(3)} ×` : '—');
  const mark = (ok) => (ok === null ? '' : ok ? 'met' : 'NOT met');
  if (f.nginx) rows.push(['0. nginx return 204, wrk -t2 -c64 (reference)', `${fmt(f.nginx.median_rps)} req/s`, '1 ×', '', '']);
  if (f.ingest_single) {
    const s = f.ingest_single;
    rows.push(['1. ingest, 1 event/request, durable, 64 conns', `${fmt(s.median_rps)} req/s (non-202: ${s.non_202_total})`,
      ratio(s.ratio_to_nginx), '≥ 0.4 × nginx', mark(s.ratio_to_nginx >= 0.4)]);
  }
  if (f.ingest_batched) {
    const b = f.ingest_batched;
    rows.push(['2. ingest, batches of 1,000, durable (2 / 4 conns)',
      `${fmt(b.median_events_per_second[2])} / ${fmt(b.median_events_per_second[4])} events/s`,
      ratio(b.best_median_events_per_second / f.nginx?.median_rps), '≥ 250,000 events/s',
      mark(b.best_median_events_per_second >= 250_000)]);
  }
  if (f.end_to_end) {
    const e = f.end_to_end;
    const many = e.many_endpoints;
    const m = e.median_webhooks_per_second;
    const r = e.ratio_to_nginx;
    rows.push(['3. end to end → pushhook receive, 1 endpoint', `${fmt(m['receive:1'])} webhooks/s`, ratio(r['receive:1']),
      '≥ 0.35 × nginx (issue 16)', mark(r['receive:1'] >= 0.35)]);
    rows.push([`3. end to end → pushhook receive, ${fmt(many)} endpoints`, `${fmt(m[`receive:${many}`])} webhooks/s`,
      ratio(r[`receive:${many}`]), `≥ 0.8 × 1 endpoint (is ${e.ratio_many_to_1.receive?.toFixed(2)})`,
      mark(e.ratio_many_to_1.receive >= 0.8)]);
    const cpu = cpuMedians(f.end_to_end.runs['receive:1']);
    if (cpu) rows.push(['3c. CPU per webhook, 1 endpoint → receive (by thread)', cpu, '', '', '']);
    rows.push(['3d. diagnostic: end to end → nginx sink, 1 endpoint', `${fmt(m['nginx:1'])} webhooks/s`, ratio(r['nginx:1']), '', '']);
    rows.push([`3d. diagnostic: end to end → nginx sink, ${fmt(many)} endpoints`, `${fmt(m[`nginx:${many}`])} webhooks/s`,
      ratio(r[`nginx:${many}`]), `(is ${e.ratio_many_to_1.nginx?.toFixed(2)} × 1 endpoint)`, '']);
  }
  if (f.latency) {
    for (const [rate, m] of Object.entries(f.latency.median)) {
      rows.push([`4. latency at ${fmt(Number(rate))} events/s (taken ${fmt(m.achieved_events_per_second)}, delivered ${fmt(m.delivered_per_second)}/s)`,
        `p50 ${fmt(m.p50_ms)} / p99 ${fmt(m.p99_ms)} / p99.9 ${fmt(m.p999_ms)} ms`, '',
        Number(rate) === 200 ? 'p99 ≤ 20 ms' : '', Number(rate) === 200 ? mark(m.p99_ms <= 20) : '']);
    }
  }
  if (f.backlog) {
    const b = f.backlog.median;
    rows.push([`5. backlog ${fmt(opts.backlog)} pending: RSS of serve`, `${fmt(b.rss_mib, 1)} MiB (peak ${fmt(b.peak_rss_mib, 1)})`, '',
      '≤ 200 MB', mark(b.rss_mib * 1.048576 <= 200)]);
    rows.push(['5. backlog: restart → ready / → first delivery', `${fmt(b.ready_seconds, 2)} s / ${fmt(b.first_delivery_seconds, 2)} s`, '',
      'ready ≤ 5 s', mark(b.ready_seconds <= 5)]);
  }
  if (f.slow_receiver) {
    const s = f.slow_receiver;
    rows.push([`6. slow receiver (200 ms), max_in_flight ${s.max_in_flight}`, `${fmt(s.median_per_second, 1)} deliveries/s`,
      `${s.ratio_to_littles_law?.toFixed(2)} × M/0.2 s`, `≈ ${fmt(s.littles_law_per_second)} /s`, mark(s.ratio_to_littles_law >= 0.9)]);
  }
  if (f.micro) {
    for (const r of f.micro.rows) {
      const cpu = r.client_cpu_us === undefined ? ''
        : ` (CPU per request: client ${fmt(r.client_cpu_us, 1)} µs, server ${fmt(r.server_cpu_us, 1)} µs)`;
      rows.push([`7. micro: ${r.name}`, `${fmt(r.ns_per_op)} ${r.unit}${cpu}`, '', '', '']);
    }
  }
  if (f.postgres) {
    const p = f.postgres.median;
    const all = Object.values(p);
    const pgs = all.filter((v) => v.store === 'postgres');
    const names = (list) => list.map((v) => (v.store === 'sqlite' ? 'SQLite' : `PG ${v.nodes}`)).join(' / ');
    const nodes = pgs.map((v) => v.nodes).join(' / ');
    rows.push([`8. ingest, batches of 1,000, durable, 2 conns per node: ${names(all)}`,
      `${all.map((v) => fmt(v.median_ingest_events_per_second)).join(' / ')} events/s`, '', '', '']);
    const ctl = f.postgres.ingest_control;
    if (ctl) rows.push([`8. ingest control: PG 1 node, ${ctl.connections} conns`, `${fmt(ctl.median_ingest_events_per_second)} events/s`, '', '', '']);
    rows.push([`8. end to end, ${f.postgres.endpoints} endpoints → pushhook receive: ${names(all)}`,
      `${all.map((v) => fmt(v.median_deliveries_per_second)).join(' / ')} deliveries/s`, '', '', '']);
    rows.push([`8. PostgreSQL per delivered message, ${nodes} node(s): statements (round trips) / commits`,
      `${pgs.map((v) => fmt(v.db.statements_per_message, 2)).join(' / ')} / ${pgs.map((v) => fmt(v.db.commits_per_message, 2)).join(' / ')}`, '', '', '']);
    if (f.postgres.pgbench) {
      const b = f.postgres.pgbench;
      rows.push([`8. pgbench -S / -N, -c 8 -j 2, scale ${b.scale}, this machine`, `${fmt(b.select_only_tps)} / ${fmt(b.simple_update_tps)} tps ` +
        `(${fmt(b.select_only_statements_per_second)} / ${fmt(b.simple_update_statements_per_second)} statements/s)`, '', '', '']);
      rows.push([`8. PROJECTION: deliveries/s at pgbench -S / -N statements/s, ${nodes} node(s)`,
        pgs.map((v) => `${fmt(v.projection.at_pgbench_select_only_capacity)} / ${fmt(v.projection.at_pgbench_simple_update_capacity)}`).join('; '),
        '', '', '']);
    }
    rows.push([`8. PROJECTION: deliveries/s per 10,000 statements/s of database capacity, ${nodes} node(s)`,
      pgs.map((v) => fmt(v.projection.deliveries_per_second_per_10k_statements_per_second)).join(' / '), '', '', '']);
  }
  if (f.reporting) {
    const r = f.reporting;
    const ms = (name) => `${fmt(r.ms[name].median, 1)} ms (p90 ${fmt(r.ms[name].p90, 1)})`;
    const under = (name) => mark(r.ms[name].median < 100);
    const site = `${fmt(r.events)} events, ${fmt(r.campaigns)} campaigns`;
    rows.push([`9. campaigns list, first page of 50 (${site})`, ms('campaigns_first_page'), '', '< 100 ms', under('campaigns_first_page')]);
    rows.push(['9. campaigns list, a later page by cursor', ms('campaigns_next_page'), '', '< 100 ms', under('campaigns_next_page')]);
    rows.push(['9. campaign page: hourly series and totals', ms('campaign_hourly'), '', '< 100 ms', under('campaign_hourly')]);
    rows.push(['9. campaign page: groups by utm_source', ms('campaign_by_utm_source'), '', '< 100 ms', under('campaign_by_utm_source')]);
    for (const [name, what] of [['campaigns_by_views', 'sorted by views'], ['campaigns_by_ctr', 'sorted by CTR'],
      ['campaigns_search', 'searched (q)']]) {
      if (r.ms[name]) rows.push([`9. campaigns list, first page ${what}`, ms(name), '', '< 100 ms', under(name)]);
    }
  }
  if (f.filters) {
    const r = f.filters;
    rows.push([`10. ingest, ${fmt(r.endpoints)} endpoints each filtered to ${r.campaigns_per_endpoint} campaigns, events/s`,
      fmt(r.median_events_per_second.filtered), '', '', '']);
    rows.push(['10. the same stream, one endpoint without a filter, events/s', fmt(r.median_events_per_second.unfiltered), '', '', '']);
    rows.push(['10. filtered / unfiltered', fmt(r.ratio, 2), '', '≥ 0.9', mark(r.ratio >= 0.9)]);
  }
  if (f.batches) {
    const m = f.batches.median;
    const e2e = m.end_to_end_events_per_second;
    rows.push([`11. end to end, batches of ${f.batches.batch.max_events}, 1 endpoint, events/s stored`, fmt(e2e.batched),
      `${fmt(e2e.batched / e2e.single, 2)} × unbatched`, '≥ 200,000', mark(e2e.batched >= 200_000)]);
    rows.push(['11. the same, one event per request, events/s', fmt(e2e.single), '', '', '']);
    rows.push(['11. drain (delivery alone), batched / unbatched, events/s',
      `${fmt(m.drain_events_per_second.batched)} / ${fmt(m.drain_events_per_second.single)}`, '', '', '']);
    rows.push(['11. latency at 200/s, max_wait_ms 0: p99, batched / unbatched',
      `${m.latency_p99_ms_at_200.batched} / ${m.latency_p99_ms_at_200.single} ms`, '', '≤ 5 ms',
      mark(m.latency_p99_ms_at_200.batched <= 5)]);
  }
  return rows;
}

// Figure 8's top statements, one column per node count.
export function statementsTable() {
  const p = results.figures.postgres?.median;
  if (!p) return null;
  const pgs = Object.values(p).filter((v) => v.store === 'postgres');
  const queries = [];
  for (const v of pgs) for (const s of v.db.top_statements) if (!queries.includes(s.query)) queries.push(s.query);
  const header = ['statement (beginning … end)', ...pgs.map((v) => `${v.nodes} node${v.nodes > 1 ? 's' : ''}`)];
  const cell = (v, q) => fmt(v.db.statements.find((s) => s.query === q)?.per_message ?? 0, 3);
  const rows = [header, ...queries.map((q) => [`\`${q.replace(/\|/g, "\\|")}\``, ...pgs.map((v) => cell(v, q))]),
    ['all statements sent (top level)', ...pgs.map((v) => fmt(v.db.statements_per_message, 2))],
    ['commits (pg_stat_database xact_commit)', ...pgs.map((v) => fmt(v.db.commits_per_message, 2))],
    ['server execution time, ms', ...pgs.map((v) => fmt(v.db.exec_ms_per_message, 3))]];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

export function printTable() {
  const header = ['figure', `median of ${opts.reps}`, 'ratio', 'target', ''];
  const rows = [header, ...tableRows()];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)];
  const m = results.machine;
  console.log(`\npushhook bench (${results.mode}), ${m.nproc} × ${m.cpu_model}, ${m.mem_total_mib} MiB, ` +
    `load average at start ${m.loadavg_start.join(' ')}, at end ${m.loadavg_end?.join(' ')}`);
  console.log(out.join('\n'));
  if (opts.smoke) console.log('(smoke: counts far too small for these numbers to mean anything; it checks the harness)');
  results.table_markdown = out.join('\n');
  const statements = statementsTable();
  if (statements) {
    console.log(`\nFigure 8: PostgreSQL statements per delivered message (pg_stat_statements, calls / messages, median of ${opts.reps})`);
    console.log(statements);
    results.figures.postgres.statements_markdown = statements;
  }
}
