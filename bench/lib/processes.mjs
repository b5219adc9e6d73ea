// Child processes (test/helpers/processes.mjs tracks each by pid and kills it when we leave,
// however we leave), the run's temporary folder, and what else must stop when the run ends.

import fs from 'node:fs';
import path from 'node:path';

import {
  freePort, killLiveChildren, sleep, spawnTracked, stopProcess, tail, waitLog,
} from '../../test/helpers/processes.mjs';
import { opts } from './context.mjs';

export { freePort, sleep, tail, waitLog };

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
  killLiveChildren();
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

// Starts a long-running child; its stderr is copied to <tmpRoot>/<logName>.log.
export function startChild(name, cmd, args, { env = {}, logName = name } = {}) {
  return spawnTracked(name, cmd, args, {
    env,
    logFile: path.join(tmpRoot, `${logName}.log`),
    stderrLimit: 20_000,
    logLimit: 5000,
  });
}

// Stops a child: `signal`, then SIGKILL after `timeoutMs`.
export function stopChild(h, signal = 'SIGTERM', timeoutMs = 15_000) {
  return stopProcess(h, signal, timeoutMs);
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

export function makeDir(name) {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export function removeDir(dir) {
  if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
}
