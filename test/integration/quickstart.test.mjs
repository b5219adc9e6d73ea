// The README's quick start, run as written: the shell blocks between <!-- quickstart:start -->
// and <!-- quickstart:end --> are executed in order by bash against `pushhook serve --dev` started
// as ./scripts/start starts it (defaults: 127.0.0.1:8080, ./pushhook-data), in a fresh directory.
// The commands name ports 8080 and 9000, so the test is skipped when either is taken.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  PUSHHOOK_BIN, REPO_ROOT, SAMPLE_PAYLOAD, itest, portInUse, sleep, tail, waitFor, waitListening,
} from '../helpers/harness.mjs';

function quickstartScript() {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const match = readme.match(/<!-- quickstart:start -->([\s\S]*?)<!-- quickstart:end -->/);
  assert.ok(match, 'README.md has quickstart:start/end markers');
  const blocks = [...match[1].matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 4, `README quick start has shell blocks (found ${blocks.length})`);
  return blocks.join('\n');
}

async function portsTaken() {
  const taken = [];
  for (const port of [8080, 9000]) {
    if ((await portInUse(port, '127.0.0.1')) || (await portInUse(port, '::1'))) taken.push(port);
  }
  return taken;
}

function environment() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PUSHHOOK_')) env[key] = value;
  }
  return env;
}

itest('the README quick start works as written', { timeout: 120_000 }, async (fx, t) => {
  const taken = await portsTaken();
  if (taken.length > 0) {
    t.skip(`port ${taken.join(' and ')} in use; the quick start uses 8080 and 9000`);
    return;
  }
  const script = quickstartScript();

  // A directory laid out like the repository root, as far as the quick start sees it.
  const root = fx.tempDir('pushhook-quickstart-');
  fs.mkdirSync(path.join(root, 'build'));
  fs.symlinkSync(PUSHHOOK_BIN, path.join(root, 'build', 'pushhook'));

  // What ./scripts/start execs, after installing and building.
  const serve = fx.spawn(['serve', '--dev'], { cwd: root, name: 'pushhook serve --dev' });
  const listening = await waitListening(serve);
  assert.equal(listening.port, 8080);
  // A person reads the token file seconds later; give the server the same chance.
  await waitFor(() => fs.existsSync(path.join(root, 'pushhook-data', 'admin-token')), { what: 'pushhook-data/admin-token' });

  // bash in a process group of its own: the receiver it backgrounds is stopped with the group.
  const shell = spawn('bash', ['-c', script], {
    cwd: root,
    env: environment(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  shell.stdout.setEncoding('utf8').on('data', (chunk) => { stdout += chunk; });
  shell.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk; });
  const shellExit = new Promise((resolve) => shell.once('exit', (code, signal) => resolve({ code, signal })));
  const killGroup = (signal) => {
    try {
      process.kill(-shell.pid, signal);
    } catch {
      // the group is gone
    }
  };
  try {
    let timer;
    const exit = await Promise.race([
      shellExit,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), 60_000); }),
    ]);
    clearTimeout(timer);
    assert.ok(exit, `the quick start commands did not finish in 60 s; stdout:\n${stdout}\nstderr:\n${stderr}`);
    const context = `stdout:\n${stdout}\nstderr:\n${stderr}\nserve:\n${tail(serve.stderr)}`;

    assert.match(stdout, /"ingest_key"/, `the site answer\n${context}`);
    assert.match(stdout, /"secret":\s*"whsec_/, `the endpoint answer\n${context}`);
    assert.match(stdout, /\{"accepted":1,"duplicates":0\}/, `the ingest answer\n${context}`);

    const received = path.join(root, 'received.ndjson');
    const lines = () => (fs.existsSync(received) ? fs.readFileSync(received, 'utf8').split('\n').filter(Boolean) : []);
    // The first attempt may come before the receiver listens; the default schedule retries after 5 s.
    await waitFor(() => lines().length >= 1, { timeoutMs: 30_000, intervalMs: 100, what: `the event in received.ndjson\n${context}` });
    await sleep(300);
    assert.deepEqual(lines(), [SAMPLE_PAYLOAD]);
  } finally {
    killGroup('SIGTERM');
    const gone = async () => !(await portInUse(9000));
    try {
      await waitFor(gone, { timeoutMs: 5_000, what: 'the quick start receiver to stop' });
    } catch {
      killGroup('SIGKILL');
    }
  }
});
