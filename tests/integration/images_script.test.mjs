// images_script.test.mjs: scripts/images against a stand-in engine (a script named docker first
// on PATH that records its arguments): it refuses clearly when the engine does not answer `info`,
// builds both Dockerfile targets tagged with the project's version, and with --push tags and
// pushes them under the registry. The real build needs a container engine and is not run here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const VERSION = /project\(tollgate VERSION (\d+\.\d+\.\d+)/.exec(readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8'))[1];
const dirs = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// A `docker` that records each call (one line, arguments tab-separated) and answers `info` with
// infoStatus.
function fakeEngine(infoStatus) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-engine-'));
  dirs.push(dir);
  const log = path.join(dir, 'calls');
  writeFileSync(path.join(dir, 'docker'), `#!/bin/sh
(IFS='\t'; printf '%s\\n' "$*") >> '${log}'
[ "$1" = info ] && exit ${infoStatus}
exit 0
`);
  chmodSync(path.join(dir, 'docker'), 0o755);
  return { dir, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split('\t')) : []) };
}

function images(engine, args) {
  return spawnSync(path.join(ROOT, 'scripts/images'), ['--engine', 'docker', ...args], {
    encoding: 'utf8', env: { ...process.env, PATH: `${engine.dir}:${process.env.PATH}` },
  });
}

test('no working container engine: says so and exits non-zero, building nothing', () => {
  const e = fakeEngine(1);
  const r = images(e, []);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /no container engine available/);
  assert.deepEqual(e.calls().map((c) => c[0]), ['info']);
});

test('builds both targets tagged with the project version; --push tags and pushes them', () => {
  const e = fakeEngine(0);
  const r = images(e, ['--push', 'registry.example.com/team/']);
  assert.equal(r.status, 0, r.stderr);
  const calls = e.calls().filter((c) => c[0] !== 'info');
  assert.deepEqual(calls.map((c) => c[0]), ['build', 'tag', 'push', 'build', 'tag', 'push']);
  for (const [i, target] of [[0, 'control'], [3, 'data']]) {
    const build = calls[i];
    assert.equal(build[build.indexOf('--target') + 1], target);
    assert.equal(build[build.indexOf('-t') + 1], `tollgate/${target}:${VERSION}`);
    assert.ok(build.includes(`VERSION=${VERSION}`), build.join(' '));
    assert.ok(build.some((a) => /^REVISION=([0-9a-f]{40}(-dirty)?|unknown)$/.test(a)), build.join(' '));
    assert.equal(build.at(-1), '.', 'the repository root is the context');
    assert.deepEqual(calls[i + 1], ['tag', `tollgate/${target}:${VERSION}`, `registry.example.com/team/tollgate/${target}:${VERSION}`]);
    assert.deepEqual(calls[i + 2], ['push', `registry.example.com/team/tollgate/${target}:${VERSION}`]);
  }
});

test('--push without a registry is refused before anything runs', () => {
  const e = fakeEngine(0);
  const r = images(e, ['--push']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--push needs a registry/);
  assert.deepEqual(e.calls(), []);
});
