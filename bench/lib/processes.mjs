// Child processes: every one is tracked by pid and killed when we leave, however we leave.

import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';

import { freePort, sleep } from '../../test/helpers/processes.mjs';
import { opts } from './context.mjs';

export { freePort, sleep };

export const children = new Map(); // pid -> handle
// The run's private temporary folder (setTempRoot); importers see it once set.
export let tmpRoot = null;
// What else must stop or go when the run ends (servers that are not children, their folders).
const stoppers = [];
const removers = [];

export function setTempRoot(dir) {
  tmpRoot = dir;
}

// `stop` runs whenever every child is killed; `remove` when the run ends without --keep.
export function atExit({ stop, remove }) {
  if (stop) stoppers.push(stop);
  if (remove) removers.push(remove);
}

export function killAll() {
  for (const stop of stoppers) stop();
  for (const [pid, h] of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    children.delete(pid);
    h.killed = true;
  }
}

export function cleanupAndExit(code) {
  killAll();
  if (tmpRoot && !opts.keep) fs.rmSync(tmpRoot, { recursive: true, force: true });
  if (!opts.keep) for (const remove of removers) remove();
  process.exit(code);
}

process.on('exit', killAll);
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    console.error(`bench/run: ${signal}: stopping every child`);
    cleanupAndExit(128 + number);
  });
}
process.on('uncaughtException', (err) => {
  console.error(`bench/run: ${err.stack || err}`);
  cleanupAndExit(1);
});
process.on('unhandledRejection', (err) => {
  console.error(`bench/run: ${err?.stack || err}`);
  cleanupAndExit(1);
});


// The environment for a child: ours without PUSHHOOK_* settings (a developer's config must not
// change what is measured), plus `extra`.
export function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PUSHHOOK_')) env[k] = v;
  return { ...env, ...extra };
}

// Starts a long-running child. stderr lines are kept (JSON ones parsed) and copied to a log file
// in the temporary folder; `onLine` listeners see each line with its arrival time.
export function startChild(name, cmd, args, { env = {}, logName = name } = {}) {
  const proc = spawn(cmd, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const h = {
    name,
    proc,
    pid: proc.pid,
    stdout: '',
    stderr: '',
    logs: [],
    listeners: new Set(),
    killed: false,
  };
  if (proc.pid !== undefined) children.set(proc.pid, h);
  h.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      children.delete(proc.pid);
      resolve({ code, signal });
    });
    proc.once('error', (error) => {
      children.delete(proc.pid);
      resolve({ code: null, signal: null, error });
    });
  });
  h.exitInfo = null;
  h.exited.then((info) => {
    h.exitInfo = info;
  });
  const log = fs.createWriteStream(path.join(tmpRoot, `${logName}.log`), { flags: 'a' });
  let partial = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    const at = Date.now();
    log.write(chunk);
    h.stderr = (h.stderr + chunk).slice(-20_000);
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) {
      let parsed = null;
      try {
        parsed = JSON.parse(line);
      } catch {
        // not a JSON line
      }
      if (parsed && typeof parsed === 'object') {
        parsed._at = at;
        h.logs.push(parsed);
        if (h.logs.length > 5000) h.logs.splice(0, 1000);
      }
      for (const fn of h.listeners) fn(parsed, line, at);
    }
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    h.stdout += chunk;
  });
  proc.once('exit', () => log.end());
  return h;
}

// Stops a child: `signal`, then SIGKILL after `timeoutMs`.
export async function stopChild(h, signal = 'SIGTERM', timeoutMs = 15_000) {
  if (!h || h.exitInfo || h.pid === undefined) return h?.exitInfo;
  try {
    process.kill(h.pid, signal);
  } catch {
    // raced with its exit
  }
  const result = await Promise.race([h.exited, sleep(timeoutMs).then(() => null)]);
  if (result) return result;
  try {
    process.kill(h.pid, 'SIGKILL');
  } catch {
    // gone
  }
  return Promise.race([h.exited, sleep(5000).then(() => ({ stuck: true }))]);
}

// Runs a command to completion, killed after `timeoutMs`. Resolves to {code, stdout, stderr}.
export async function runCommand(name, cmd, args, { timeoutMs, env = {} } = {}) {
  const h = startChild(name, cmd, args, { env });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(h.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, timeoutMs);
  const info = await h.exited;
  clearTimeout(timer);
  if (info.error) throw new Error(`${name}: cannot run ${cmd}: ${info.error.message}`);
  if (timedOut) throw new Error(`${name}: still running after ${timeoutMs} ms; killed`);
  return { code: info.code, stdout: h.stdout, stderr: h.stderr };
}

// Resolves with the first stderr JSON line for which `pred` holds; rejects when the child exits
// first or after `timeoutMs`.
export function waitLog(h, pred, timeoutMs, what) {
  const found = h.logs.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      h.listeners.delete(listener);
      fn(value);
    };
    const listener = (parsed) => {
      if (parsed && pred(parsed)) finish(resolve, parsed);
    };
    h.listeners.add(listener);
    const timer = setTimeout(
      () => finish(reject, new Error(`${h.name}: no ${what} within ${timeoutMs} ms; stderr:\n${tail(h.stderr)}`)),
      timeoutMs,
    );
    h.exited.then(({ code, signal, error }) =>
      finish(reject, new Error(`${h.name} exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ` +
        `before ${what}; stderr:\n${tail(h.stderr)}`)));
  });
}

export function tail(text, n = 15) {
  return text.trim().split('\n').slice(-n).join('\n');
}


export function makeDir(name) {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function removeDir(dir) {
  if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
}
