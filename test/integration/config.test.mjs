// DESIGN section 8: configuration in its three forms (flag, PUSHHOOK_* variable, TOML file),
// exit code 2 with a one-line reason for bad configuration, --help, graceful SIGTERM.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { itest, stop } from '../helpers/harness.mjs';

// Runs pushhook to completion (killing it after `timeoutMs`): {code, signal, stdout, stderr}.
async function run(fx, args, { env = {}, timeoutMs = 15_000 } = {}) {
  const cwd = fx.tempDir('pushhook-config-');
  const handle = fx.spawn(args, { cwd, env, name: `pushhook ${args.join(' ')}` });
  let timer;
  const result = await Promise.race([
    handle.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!result) {
    await stop(handle, 'SIGKILL');
    assert.fail(`pushhook ${args.join(' ')} still running after ${timeoutMs} ms; stderr:\n${handle.stderr}`);
  }
  return { ...result, stdout: handle.stdout, stderr: handle.stderr, cwd };
}

function assertBadConfig(result, pattern, what) {
  assert.equal(result.code, 2, `${what}: exit code ${result.code} (signal ${result.signal}); stderr:\n${result.stderr}`);
  const lines = result.stderr.trim().split('\n').filter((l) => l.trim().length > 0);
  assert.equal(lines.length, 1, `${what}: a one-line reason on stderr, got:\n${result.stderr}`);
  assert.match(lines[0], pattern, `${what}: the reason names the problem`);
}

itest('serve --durability bogus exits 2 with a one-line reason', async (fx) => {
  const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data', '--durability', 'bogus']);
  assertBadConfig(result, /durability/i, '--durability bogus');
});

itest('PUSHHOOK_DURABILITY=bogus exits 2 with a one-line reason', async (fx) => {
  const result = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data'], { env: { PUSHHOOK_DURABILITY: 'bogus' } });
  assertBadConfig(result, /durability/i, 'PUSHHOOK_DURABILITY=bogus');
});

itest('a TOML file with a bad retry schedule exits 2 with a one-line reason', async (fx) => {
  const dir = fx.tempDir('pushhook-config-');
  const file = path.join(dir, 'pushhook.toml');
  fs.writeFileSync(file, 'listen = "127.0.0.1:0"\n\n[delivery]\nretry_schedule = "5s,soon"\n');
  const result = await run(fx, ['serve', '--config', file, '--data-dir', path.join(dir, 'data')]);
  assertBadConfig(result, /retry|schedule|soon/i, 'delivery.retry_schedule = "5s,soon"');
});

itest('an unknown flag and a bad --retry-schedule exit 2', async (fx) => {
  const unknown = await run(fx, ['serve', '--no-such-flag']);
  assert.equal(unknown.code, 2, `unknown flag: exit ${unknown.code}; stderr:\n${unknown.stderr}`);
  const schedule = await run(fx, ['serve', '--listen', '127.0.0.1:0', '--data-dir', 'data', '--retry-schedule', 'often']);
  assertBadConfig(schedule, /retry|schedule|often/i, '--retry-schedule often');
});

itest('--help on the binary and on its subcommands exits 0', async (fx) => {
  const top = await run(fx, ['--help']);
  assert.equal(top.code, 0, top.stderr);
  const topText = top.stdout + top.stderr;
  for (const sub of ['serve', 'receive']) assert.match(topText, new RegExp(sub), `--help lists ${sub}`);

  const serve = await run(fx, ['serve', '--help']);
  assert.equal(serve.code, 0, serve.stderr);
  for (const flag of ['--listen', '--data-dir', '--durability', '--retry-schedule', '--dev', '--allow-http']) {
    assert.ok((serve.stdout + serve.stderr).includes(flag), `serve --help mentions ${flag}`);
  }

  const receive = await run(fx, ['receive', '--help']);
  assert.equal(receive.code, 0, receive.stderr);
  for (const flag of ['--listen', '--secret', '--out']) {
    assert.ok((receive.stdout + receive.stderr).includes(flag), `receive --help mentions ${flag}`);
  }
});

itest('serve stops on SIGTERM with exit code 0', async (fx) => {
  const serve = await fx.startServe();
  const result = await stop(serve, 'SIGTERM', 15_000);
  assert.deepEqual(result, { code: 0, signal: null });
});

itest('bench runs the repository harness against this binary and passes its options through', async (fx) => {
  const help = await run(fx, ['bench', '--help']);
  assert.equal(help.code, 0, `bench --help: exit ${help.code}; stderr:\n${help.stderr}`);
  assert.match(help.stdout, /benchmark harness \(bench\/run\.mjs/);
  // An option the harness refuses comes back with the harness's own usage error and exit code.
  const refused = await run(fx, ['bench', '--only', '99']);
  assert.equal(refused.code, 2, `bench --only 99: exit ${refused.code}; stderr:\n${refused.stderr}`);
  assert.match(refused.stderr, /--only takes figure numbers/);
  // Without a harness to find, a clear reason and exit 1.
  const missing = await run(fx, ['bench', '--smoke'], {
    env: { PUSHHOOK_BENCH_HARNESS: '/nonexistent/run.mjs' },
  });
  assert.equal(missing.code, 1, `bench without its harness: exit ${missing.code}`);
  assert.match(missing.stderr, /harness \(bench\/run\.mjs\) was not found at PUSHHOOK_BENCH_HARNESS/);
});
