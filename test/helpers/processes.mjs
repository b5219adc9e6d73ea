// What the integration tests and the benchmark harness (bench/) both need of child processes and
// ports on loopback, in one place. Every child started here is tracked by pid and killed when
// this Node process exits, however it exits (the importers turn signals into process.exit).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A port on 127.0.0.1 that nothing listened on a moment ago.
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// True when something already listens on host:port (or binding it is refused).
export async function portInUse(port, host = '127.0.0.1') {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', (err) => resolve(err.code !== 'EADDRNOTAVAIL' && err.code !== 'EAFNOSUPPORT'));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}

export function tail(text, lines = 40) {
  return text.trim().split('\n').slice(-lines).join('\n');
}

// The environment for a child: ours without any PUSHHOOK_* setting (a developer's own config must
// change neither a test nor a measurement), plus `extra`.
export function childEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PUSHHOOK_')) env[key] = value;
  }
  return { ...env, ...extra };
}

const live = new Map(); // pid -> handle

// Every child still running, by pid.
export function liveChildren() {
  return live;
}

// SIGKILLs every child still running.
export function killLiveChildren() {
  for (const [pid, handle] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    live.delete(pid);
    handle.killed = true;
  }
}
process.on('exit', killLiveChildren);

// Starts `cmd args...` with the child environment and keeps what it says: stdout, stderr (the last
// `stderrLimit` characters), and each stderr line that is a JSON object in `logs` (at most
// `logLimit`; each with `_at`, its arrival time). Listeners in `listeners` see every stderr line as
// (parsed or null, text, at). stderr is also appended to `logFile` when given. The handle's
// `exited` resolves to {code, signal} or {code: null, signal: null, error}; `exitInfo` holds it.
export function spawnTracked(name, cmd, args, { cwd, env = {}, logFile, stderrLimit = Infinity, logLimit = Infinity } = {}) {
  const proc = spawn(cmd, args, { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const handle = {
    name,
    proc,
    pid: proc.pid,
    stdout: '',
    stderr: '',
    logs: [],
    listeners: new Set(),
    killed: false,
    exitInfo: null,
  };
  if (proc.pid !== undefined) live.set(proc.pid, handle);
  // 'exit' can come before the last of the child's output has been read: what it wrote last
  // (often the reason it exited) is awaited until its pipes close, for a second at most, since a
  // grandchild that holds them open would keep them open for its whole life.
  const drained = new Promise((resolve) => {
    proc.once('close', resolve);
    proc.once('exit', () => setTimeout(resolve, 1000).unref());
  });
  handle.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc.pid);
      drained.then(() => resolve({ code, signal }));
    });
    // A process that could not be started emits 'error' and no 'exit'.
    proc.once('error', (error) => {
      handle.stderr += `\n[spawn error] ${error.message}\n`;
      if (proc.pid === undefined || proc.exitCode === null) {
        live.delete(proc.pid);
        resolve({ code: null, signal: null, error });
      }
    });
  });
  handle.exited.then((info) => {
    handle.exitInfo = info;
  });
  const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : null;
  let partial = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    const at = Date.now();
    if (log && !log.writableEnded) log.write(chunk);
    handle.stderr += chunk;
    if (handle.stderr.length > stderrLimit) handle.stderr = handle.stderr.slice(-stderrLimit);
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) {
      let parsed = null;
      try {
        parsed = JSON.parse(line);
      } catch {
        // not a JSON log line: kept in handle.stderr only
      }
      if (parsed === null || typeof parsed !== 'object') parsed = null;
      if (parsed) {
        parsed._at = at;
        handle.logs.push(parsed);
        if (handle.logs.length > logLimit) handle.logs.splice(0, handle.logs.length - logLimit);
      }
      for (const listener of handle.listeners) listener(parsed, line, at);
    }
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    handle.stdout += chunk;
  });
  drained.then(() => log?.end());
  return handle;
}

// Resolves with the first JSON log line of `handle` for which `pred` holds; rejects when the child
// exits first or after `timeoutMs`, with its last words.
export function waitLog(handle, pred, timeoutMs, what) {
  const found = handle.logs.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      handle.listeners.delete(listener);
      fn(value);
    };
    const listener = (parsed) => {
      if (parsed && pred(parsed)) finish(resolve, parsed);
    };
    handle.listeners.add(listener);
    const timer = setTimeout(() => finish(reject, new Error(
      `${handle.name}: no ${what} within ${timeoutMs} ms; stderr:\n${tail(handle.stderr)}`)), timeoutMs);
    handle.exited.then(({ code, signal, error }) => finish(reject, new Error(
      `${handle.name} exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ` +
      `before ${what}; stderr:\n${tail(handle.stderr)}`)));
  });
}

// Stops a child: `signal`, then SIGKILL when it is still running after `timeoutMs`. Resolves to
// its {code, signal}, or {code: null, signal: 'SIGKILL', stuck: true} when even that did not end it.
export async function stopProcess(handle, signal = 'SIGTERM', timeoutMs = 10_000) {
  if (!handle || handle.pid === undefined) return handle?.exitInfo;
  if (handle.exitInfo) return handle.exitInfo;
  const within = async (ms) => {
    let timer;
    const result = await Promise.race([
      handle.exited,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), ms);
      }),
    ]);
    clearTimeout(timer);
    return result;
  };
  try {
    process.kill(handle.pid, signal);
  } catch {
    // raced with its exit
  }
  const result = await within(timeoutMs);
  if (result) return result;
  try {
    process.kill(handle.pid, 'SIGKILL');
  } catch {
    // gone
  }
  return (await within(5_000)) ?? { code: null, signal: 'SIGKILL', stuck: true };
}
