// image_contract.test.mjs: the Dockerfile holds the images' contract (docs/operations.md,
// "Container images"), read from the file itself since no container engine runs here: Debian 12
// to build, Debian 12 slim to run, pinned tags, UID/GID 10001, exec-form entrypoints from
// /opt/tollgate/bin, SIGTERM, the ports, the data plane's state dir, OCI labels, and a runtime
// package list that holds every library the built binaries load (mapped to Debian packages with
// dpkg -S), so an image that would fail to start on a missing library fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { BIN } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const TARGETS = {
  control: { bin: 'tollgate-control', port: '8081', listenEnv: 'TOLLGATE_CONTROL_LISTEN' },
  data: { bin: 'tollgate-data', port: '8080', listenEnv: 'TOLLGATE_DATA_LISTEN' },
};

// Instructions in order: continuation lines joined, comment lines dropped (as the builder does).
function instructions(text) {
  const out = [];
  let cur = null;
  for (const raw of text.split('\n')) {
    const t = raw.trim();
    if (t.startsWith('#') || (cur === null && t === '')) continue;
    const cont = t.endsWith('\\');
    const part = cont ? t.slice(0, -1).trim() : t;
    cur = cur === null ? part : `${cur} ${part}`;
    if (!cont) {
      const m = /^(\S+)\s*(.*)$/.exec(cur);
      out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
      cur = null;
    }
  }
  return out;
}

// Stages: {name, from, ins: [...]}; `chain(name)` is the stage and the stages it is built FROM.
function stages(ins) {
  const list = [];
  for (const i of ins) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      assert.ok(m, `FROM ${i.args}`);
      list.push({ from: m[1], name: m[2] || String(list.length), ins: [] });
    } else if (list.length) {
      list.at(-1).ins.push(i);
    }
  }
  const byName = Object.fromEntries(list.map((s) => [s.name, s]));
  const chain = (name) => {
    const out = [];
    for (let s = byName[name]; s; s = byName[s.from]) out.push(s);
    return out;
  };
  return { list, byName, chain };
}

// Packages a RUN's `apt-get install` names (options and shell operators left out).
function aptPackages(stage) {
  const pkgs = new Set();
  for (const i of stage.ins.filter((x) => x.op === 'RUN')) {
    for (const m of i.args.matchAll(/apt-get install((?:\s+(?!&&|;|\|)\S+)+)/g)) {
      for (const w of m[1].trim().split(/\s+/)) if (!w.startsWith('-')) pkgs.add(w);
    }
  }
  return pkgs;
}

function labels(stageChain) {
  const out = {};
  for (const s of [...stageChain].reverse()) {
    for (const i of s.ins.filter((x) => x.op === 'LABEL')) {
      for (const m of i.args.matchAll(/([\w.-]+)="([^"]*)"/g)) out[m[1]] = m[2];
    }
  }
  return out;
}

function envOf(stageChain) {
  const out = {};
  for (const s of [...stageChain].reverse()) {
    for (const i of s.ins.filter((x) => x.op === 'ENV')) {
      for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) out[m[1]] = m[2];
    }
  }
  return out;
}

// The last instruction `op` along the chain (the final stage's own wins).
function last(stageChain, op) {
  for (const s of stageChain) {
    const found = s.ins.filter((x) => x.op === op);
    if (found.length) return found.at(-1).args;
  }
  return undefined;
}

// The Debian package that holds a shared object (ldd prints /lib/...; dpkg knows /usr/lib/...
// on merged-/usr systems, and the reverse).
function debPackageOf(file) {
  for (const p of [file, realpathSync(file)]) {
    try {
      return execFileSync('dpkg', ['-S', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')[0].split(':')[0];
    } catch { /* try the next spelling */ }
  }
  throw new Error(`no Debian package holds ${file}`);
}

// The packages whose libraries a binary needs directly (its DT_NEEDED entries, resolved by ldd);
// the libraries those load come with the packages' own dependencies.
function neededPackages(binPath) {
  const needed = execFileSync('readelf', ['-d', binPath], { encoding: 'utf8' })
    .split('\n').map((l) => /\(NEEDED\).*\[(.+)\]/.exec(l)?.[1]).filter(Boolean);
  const resolved = new Map();
  for (const l of execFileSync('ldd', [binPath], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*(\S+) => (\/\S+)/.exec(l);
    if (m) resolved.set(m[1], m[2]);
  }
  const pkgs = new Map();
  for (const lib of needed) {
    if (/^lib(asan|ubsan)\.so/.test(lib)) continue; // the sanitizer build's runtimes; images build without
    assert.ok(resolved.has(lib), `ldd resolves ${lib} for ${binPath}`);
    pkgs.set(lib, debPackageOf(resolved.get(lib)));
  }
  return pkgs;
}

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const ins = instructions(dockerfile);
const st = stages(ins);
const version = /project\(tollgate VERSION (\d+\.\d+\.\d+)/.exec(readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8'))[1];

test('built on Debian 12, run on Debian 12 slim, every base image pinned by tag', () => {
  for (const s of st.list.filter((x) => !st.byName[x.from])) {
    assert.match(s.from, /^debian:12(-slim)?$/, `stage ${s.name} starts FROM ${s.from}`);
  }
  assert.doesNotMatch(dockerfile, /:latest\b/, 'no image is taken as latest');
  assert.equal(st.byName.build?.from, 'debian:12', 'a build stage FROM debian:12');
  for (const t of Object.keys(TARGETS)) {
    const chain = st.chain(t);
    assert.ok(chain.length, `a target named ${t}`);
    assert.equal(chain.at(-1).from, 'debian:12-slim', `${t} runs on debian:12-slim`);
    assert.ok(!chain.some((s) => s.name === 'build'), `${t} is not built on the build stage`);
  }
});

test('the build stage installs what the build uses and builds Release without sanitizers', () => {
  const build = st.byName.build;
  const pkgs = aptPackages(build);
  // the -dev packages (and llhttp's sources) scripts/lib/common.sh installs for the build,
  // without those only tests use
  const common = readFileSync(path.join(ROOT, 'scripts/lib/common.sh'), 'utf8');
  const list = /TG_DEB_PACKAGES=\(([\s\S]*?)\n\)/.exec(common)[1].replace(/#.*$/gm, '').split(/\s+/).filter(Boolean);
  const testOnly = new Set(['libcriterion-dev']);
  const wanted = list.filter((p) => (/-dev$/.test(p) && !/^libclang-rt/.test(p) && !testOnly.has(p))
    || ['node-llhttp', 'cmake', 'pkg-config', 'build-essential'].includes(p));
  assert.ok(wanted.includes('libpq-dev') && wanted.includes('node-llhttp'), `parsed ${wanted}`);
  for (const p of wanted) assert.ok(pkgs.has(p), `the build stage installs ${p}`);
  const cmake = build.ins.filter((i) => i.op === 'RUN' && /cmake -S/.test(i.args)).map((i) => i.args).join(' ');
  assert.match(cmake, /-DCMAKE_BUILD_TYPE=Release\b/);
  assert.match(cmake, /-DTG_SANITIZE=OFF\b/);
  assert.match(cmake, /-DTG_WERROR=ON\b/);
  assert.match(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'), /^node_modules$/m,
    'a host\'s node_modules never replaces what npm ci installs in the build');
});

for (const [target, t] of Object.entries(TARGETS)) {
  test(`${target}: UID 10001, exec-form entrypoint from /opt/tollgate/bin, SIGTERM, port ${t.port}, OCI labels`, () => {
    const chain = st.chain(target);
    assert.equal(last(chain, 'USER'), '10001:10001');
    const ep = last(chain, 'ENTRYPOINT');
    let argv;
    assert.doesNotThrow(() => { argv = JSON.parse(ep); }, `ENTRYPOINT is exec form (a JSON array): ${ep}`);
    assert.deepEqual(argv, [`/opt/tollgate/bin/${t.bin}`], 'the binary itself, no shell');
    assert.equal(last(chain, 'CMD'), undefined, 'no CMD (a shell-form one would need /bin/sh)');
    assert.equal(last(chain, 'SHELL'), undefined);
    assert.equal(last(chain, 'STOPSIGNAL'), 'SIGTERM');
    assert.equal(last(chain, 'EXPOSE'), t.port);
    assert.equal(envOf(chain)[t.listenEnv], `0.0.0.0:${t.port}`);
    assert.ok(!chain.some((s) => s.ins.some((i) => i.op === 'VOLUME')), 'no VOLUME: the chart mounts what is writable');
    const copies = chain[0].ins.filter((i) => i.op === 'COPY').map((i) => i.args);
    assert.ok(copies.some((c) => new RegExp(`^--from=build \\S+/${t.bin} /opt/tollgate/bin/${t.bin}$`).test(c)),
      `${t.bin} copied from the build to /opt/tollgate/bin: ${copies}`);

    const l = labels(chain);
    for (const k of ['title', 'description', 'version', 'source', 'licenses', 'revision']) {
      assert.ok(l[`org.opencontainers.image.${k}`], `label org.opencontainers.image.${k}`);
    }
    assert.equal(l['org.opencontainers.image.title'], t.bin);
    assert.equal(l['org.opencontainers.image.version'], '${VERSION}');
    assert.equal(l['org.opencontainers.image.revision'], '${REVISION}');
    const args = Object.fromEntries(chain.flatMap((s) => s.ins.filter((i) => i.op === 'ARG'))
      .map((i) => i.args.split('=')));
    assert.equal(args.VERSION, version, 'the default version is the project\'s (CMakeLists.txt)');
    assert.ok('REVISION' in args && 'SOURCE' in args && 'LICENSES' in args);
  });
}

test('control carries the dashboard beside its binary; data owns /var/lib/tollgate as 10001', () => {
  const control = st.chain('control');
  assert.ok(control[0].ins.some((i) => i.op === 'COPY' && /^--from=build \S+ \/opt\/tollgate\/web$/.test(i.args)),
    'web/ at /opt/tollgate/web, where <bin>/../web finds it');
  const data = st.chain('data');
  assert.equal(envOf(data).TOLLGATE_STATE_DIR, '/var/lib/tollgate');
  const runs = data[0].ins.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
  assert.match(runs, /install -d -o 10001 -g 10001 -m 07\d0 \/var\/lib\/tollgate\b/);
  assert.ok(aptPackages(data[0]).has('ca-certificates'), 'the data plane verifies providers\' TLS');
  // the user exists (libpq and others ask getpwuid) with no home and no login shell
  const base = data.find((s) => s.from === 'debian:12-slim');
  const user = base.ins.filter((i) => i.op === 'RUN').map((i) => i.args).join(' ');
  assert.match(user, /groupadd --gid 10001 \S+/);
  assert.match(user, /useradd --uid 10001 --gid 10001 --no-create-home --home-dir \/nonexistent --shell \/usr\/sbin\/nologin/);
});

test('each image installs the Debian package of every library its binary loads', () => {
  const dirs = [...new Set([BIN, path.join(ROOT, 'build/bin')])].filter((d) => existsSync(path.join(d, 'tollgate-data')));
  assert.ok(dirs.length, `built binaries in ${BIN}`);
  // libc6 is Essential: every Debian image has it
  const inBase = new Set(['libc6']);
  for (const dir of dirs) {
    for (const [target, t] of Object.entries(TARGETS)) {
      const have = aptPackages(st.chain(target)[0]);
      const needs = neededPackages(path.join(dir, t.bin));
      assert.ok(needs.size >= 4, `${t.bin} loads its libraries: ${[...needs.keys()]}`);
      for (const [lib, pkg] of needs) {
        if (inBase.has(pkg)) continue;
        assert.ok(have.has(pkg), `the ${target} image installs ${pkg} (${lib}, loaded by ${dir}/${t.bin})`);
      }
      // and nothing more than the binary loads (plus the CA bundle for the data plane)
      const extra = [...have].filter((p) => ![...needs.values()].includes(p) && p !== 'ca-certificates');
      assert.deepEqual(extra, [], `the ${target} image installs only what ${t.bin} loads`);
    }
  }
});
