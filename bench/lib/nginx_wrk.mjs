// nginx (the reference every figure is compared with, and a sink that costs nothing) and wrk
// (the load generator), both on 127.0.0.1.

import fs from 'node:fs';
import path from 'node:path';

import { EVENT_BODY } from './context.mjs';
import { freePort, makeDir, runCommand, sleep, startChild, tail, tmpRoot } from './processes.mjs';
import { percentile } from './stats.mjs';

// nginx answering 204 to everything. With `accessLog`, it writes one line per request holding
// its time ($msec, "1795817164.753\n"), which makes it a sink whose count and finishing time are
// exact and cost nothing to verify (the diagnostic variant of figure 3).
export async function startNginx(name = 'nginx', { accessLog = null } = {}) {
  const dir = makeDir(name);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  const accessLine = accessLog
    ? `log_format bench_msec '$msec';\n  access_log ${accessLog} bench_msec buffer=64k flush=100ms;`
    : 'access_log off;';
  // master_process off: one process that is the one worker, so that killing the pid we know
  // stops all of nginx (a master killed by SIGKILL leaves its workers running).
  fs.writeFileSync(conf, `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 20000; }
worker_rlimit_nofile 40000;
http {
  ${accessLine}
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 204; }
  }
}
`);
  const h = startChild(name, 'nginx', ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`, { method: 'POST', body: EVENT_BODY, signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 204) break;
    } catch {
      // not up yet
    }
    if (h.exitInfo) throw new Error(`nginx exited (${JSON.stringify(h.exitInfo)}):\n${tail(h.stderr)}`);
    if (Date.now() > deadline) throw new Error('nginx did not answer 204 within 10 s');
    await sleep(20);
  }
  return { h, port, base: `http://127.0.0.1:${port}` };
}

// A wrk script posting the 350-byte event, counting answers by status in every thread and
// printing the totals as one JSON line at the end. nginx and ingest use the same script, so the
// cost of the Lua hook is in both sides of the ratio.
export function writeWrkScript(name, headers) {
  const file = path.join(tmpRoot, `${name}.lua`);
  const headerLines = Object.entries(headers)
    .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
    .join('\n');
  fs.writeFileSync(file, `wrk.method = "POST"
wrk.body = ${luaString(EVENT_BODY)}
wrk.headers["content-type"] = "application/json"
${headerLines}

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

statuses = {}
function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      total[k] = (total[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"statuses":{%s},"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\\n',
    table.concat(parts, ","), summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`);
  return file;
}

export function luaString(s) {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export async function runWrk(url, script, seconds) {
  const args = ['-t2', '-c64', `-d${seconds}s`, '--timeout', '10s', '-s', script, url];
  const { code, stdout, stderr } = await runCommand('wrk', 'wrk', args, { timeoutMs: (seconds + 30) * 1000 });
  const rps = Number((stdout.match(/Requests\/sec:\s+([\d.]+)/) || [])[1]);
  const m = stdout.match(/WRK_RESULT (.*)/);
  if (code !== 0 || !Number.isFinite(rps) || !m) {
    throw new Error(`wrk failed (exit ${code}): ${stdout.slice(-500)} ${tail(stderr)}`);
  }
  const result = JSON.parse(m[1]);
  return { rps, ...result };
}
