// The Debian package (DESIGN section 8, README "Install on a server"): scripts/package-deb builds
// it from this build tree; lintian finds no error; the unit's exposure by `systemd-analyze
// security` stays low. Then, as root, it is installed with apt-get, the installed unit passes
// `systemd-analyze verify`, `serve` answers /readyz when run as the unit runs it (its user, its
// config, its state folder; systemd itself does not run here), and remove and purge take back
// what install made.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, freePort, itest, makeTempDir, removeTempDir, sleep } from '../helpers/harness.mjs';
import { spawnTracked, stopProcess } from '../helpers/processes.mjs';

const execFileAsync = promisify(execFile);
const run = (cmd, args, opts = {}) => execFileAsync(cmd, args, { maxBuffer: 16 * 1024 * 1024, ...opts });
const BUILD = process.env.PUSHHOOK_BUILD_DIR ?? path.join(REPO_ROOT, 'build');
const ROOT = process.getuid?.() === 0;
const installed = () => fs.existsSync('/var/lib/dpkg/info/pushhook.list');

// Built once for both tests, in a folder removed when the test process ends.
let debPath = null;
async function buildPackage() {
  if (debPath) return debPath;
  const out = makeTempDir('pushhook-deb-');
  process.on('exit', () => removeTempDir(out));
  const { stdout } = await run(path.join(REPO_ROOT, 'scripts', 'package-deb'), ['--build', BUILD, '--out', out]);
  debPath = path.resolve(stdout.trim());
  return debPath;
}

itest('the package builds, lintian finds no error, and the unit is hardened', { timeout: 120_000 }, async (fx) => {
  const deb = await buildPackage();
  const { stdout: contents } = await run('dpkg-deb', ['--contents', deb]);
  for (const file of ['./usr/bin/pushhook', './lib/systemd/system/pushhook.service', './etc/pushhook/pushhook.toml',
    './usr/share/pushhook/sdk/pushhook-sw.js', './usr/share/doc/pushhook/copyright']) {
    assert.match(contents, new RegExp(` ${file.replace(/\./g, '\\.')}\\n`), `the package holds ${file}`);
  }
  const { stdout: conffiles } = await run('dpkg-deb', ['--info', deb, 'conffiles']);
  assert.equal(conffiles.trim(), '/etc/pushhook/pushhook.toml');
  const lint = await run('lintian', ['--tag-display-limit', '0', deb]).catch((e) => e);
  const errors = `${lint.stdout}`.split('\n').filter((l) => l.startsWith('E: '));
  assert.deepEqual(errors, [], `lintian errors:\n${lint.stdout}${lint.stderr ?? ''}`);
  const { stdout: security } = await run('systemd-analyze', ['security', '--offline=true',
    path.join(REPO_ROOT, 'packaging', 'debian', 'pushhook.service')]);
  const exposure = Number(security.match(/Overall exposure level for pushhook\.service: ([\d.]+)/)?.[1]);
  assert.ok(exposure <= 2.0, `exposure ${exposure} (systemd-analyze security): ${security.slice(-400)}`);
});

itest('installed with apt-get, it runs as its unit would, and remove and purge take it back',
  { timeout: 240_000, skip: ROOT ? (installed() ? 'a pushhook package is installed on this machine already' : false) : 'not root: apt-get install needs it' },
  async (fx) => {
    const deb = await buildPackage();
    fx.onCleanup(async () => {
      if (installed()) await run('apt-get', ['purge', '-y', 'pushhook']).catch(() => {});
    });
    await run('apt-get', ['install', '-y', '--no-install-recommends', deb], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    assert.ok(installed());
    const { stdout: user } = await run('getent', ['passwd', 'pushhook']);
    assert.match(user, /^pushhook:x:\d+:\d+:[^:]*:\/var\/lib\/pushhook:\/usr\/sbin\/nologin$/m);
    await run('systemd-analyze', ['verify', '/lib/systemd/system/pushhook.service']);
    assert.match((await run('/usr/bin/pushhook', ['version'])).stdout, /^pushhook \d+\.\d+\.\d+\ncommit /);

    // As the unit runs it: its user and group, its config, StateDirectory=pushhook (mode 0700),
    // WorkingDirectory, UMask=0077. Only the port differs, so as not to meet another test's.
    const state = '/var/lib/pushhook';
    fs.mkdirSync(state, { recursive: true, mode: 0o700 });
    await run('chown', ['pushhook:pushhook', state]);
    const port = await freePort();
    const serve = spawnTracked('packaged serve', 'setpriv', ['--reuid=pushhook', '--regid=pushhook', '--init-groups',
      '--inh-caps=-all', 'sh', '-c', 'umask 0077 && exec /usr/bin/pushhook serve --config /etc/pushhook/pushhook.toml'],
    { cwd: state, env: { PUSHHOOK_LISTEN: `127.0.0.1:${port}` } });
    fx.onCleanup(() => stopProcess(serve, 'SIGKILL'));
    // Serve listens before its store is open: /readyz answers 503 until the migrations are done.
    let ready = null;
    for (let i = 0; i < 100 && ready !== 200; i += 1) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => null);
      if (ready !== 200) await sleep(100);
      if (serve.exitInfo) break;
    }
    assert.equal(ready, 200, `/readyz; serve said:\n${serve.stderr}`);
    const token = fs.statSync(path.join(state, 'admin-token'));
    const owner = Number(user.split(':')[2]);
    assert.equal(token.uid, owner, 'the generated token belongs to the pushhook user');
    assert.equal(token.mode & 0o777, 0o600);
    assert.ok(fs.existsSync(path.join(state, 'pushhook.db')), 'the database is in /var/lib/pushhook');
    serve.proc.kill('SIGTERM');
    assert.deepEqual(await serve.exited, { code: 0, signal: null });

    await run('apt-get', ['remove', '-y', 'pushhook']);
    assert.ok(!fs.existsSync('/usr/bin/pushhook'), 'remove takes the binary');
    assert.ok(fs.existsSync('/etc/pushhook/pushhook.toml'), 'and keeps the configuration');
    assert.ok(fs.existsSync(path.join(state, 'pushhook.db')), 'and the data');
    await run('apt-get', ['purge', '-y', 'pushhook']);
    assert.ok(!fs.existsSync('/etc/pushhook/pushhook.toml'), 'purge takes the configuration');
    assert.ok(!fs.existsSync(state), 'and the data folder');
    assert.equal((await run('getent', ['passwd', 'pushhook']).catch((e) => e)).code, 2, 'and the user');
    assert.ok(os.userInfo().uid === 0);
  });
