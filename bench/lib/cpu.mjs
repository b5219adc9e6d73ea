// CPU time of processes and of their threads, from /proc: what a figure charges per event.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';

// CPU seconds (user + system) a process has used; with `children`, also those of its children
// that it has reaped (for the postmaster: backends that have exited).
export const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
export function cpuSeconds(pid, { children = false } = {}) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return { ppid: Number(f[1]), seconds: ticks / CLOCK_TICKS };
  } catch {
    return null; // gone
  }
}

// CPU seconds (user + system) by thread name of a live process, from /proc/<pid>/task.
export function threadCpuSeconds(pid) {
  const byName = {};
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName; // gone
  }
  for (const tid of tasks) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName[name] = (byName[name] ?? 0) + (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
    } catch {
      // the thread ended meanwhile
    }
  }
  return byName;
}

// Microseconds of CPU per item between two threadCpuSeconds snapshots of each process:
// {process: {total, threads: {name: µs}}}. Threads that ended in between are not counted.
export function cpuPerItem(before, after, items) {
  const out = {};
  for (const [proc, threads] of Object.entries(after)) {
    const per = {};
    let total = 0;
    for (const [name, seconds] of Object.entries(threads)) {
      const used = seconds - (before[proc]?.[name] ?? 0);
      if (used <= 0) continue;
      per[name] = (used * 1e6) / Math.max(1, items);
      total += per[name];
    }
    out[proc] = { total, threads: per };
  }
  return out;
}
