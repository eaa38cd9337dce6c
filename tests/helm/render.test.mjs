// render.test.mjs: helm/tollgate rendered with the real Helm 3 under several sets of values; every
// object is checked against the Kubernetes schema (unknown fields are errors) and against the
// invariants in lib/invariants.mjs (non-root, probes, resources, Services and PDB/HPA that find
// their pods, secrets only in Secrets, the migration hook's ordering, the drain).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { CHART, DB_URL, OWNER_URL, byKind, cmakeVersion, hookOf, named, template } from './lib/chart.mjs';
import { checkAll } from './lib/invariants.mjs';

const APP = cmakeVersion();
const DB = ['--set', `postgresql.url=${DB_URL}`];

function render(args, opts) {
  const r = template(args, opts);
  assert.equal(r.code, 0, r.stderr);
  return r.objects;
}
const component = (objects, kind, c) => objects.find((o) => o.kind === kind && o.metadata.labels['app.kubernetes.io/component'] === c);

test('defaults (with a database URL): two control replicas, an autoscaled data plane, all checks hold', async () => {
  const objs = render(DB);
  await checkAll(objs, { appVersion: APP });
  const kinds = objs.map((o) => o.kind).sort();
  assert.deepEqual(kinds, ['Deployment', 'Deployment', 'HorizontalPodAutoscaler', 'Job', 'Pod', 'PodDisruptionBudget',
    'PodDisruptionBudget', 'Secret', 'Secret', 'Secret', 'Service', 'Service', 'ServiceAccount', 'ServiceAccount']);
  const control = component(objs, 'Deployment', 'control');
  assert.equal(control.spec.replicas, 2);
  assert.equal(control.spec.template.spec.containers[0].image, `tollgate/control:${APP}`);
  assert.equal(component(objs, 'Deployment', 'data').spec.template.spec.containers[0].image, `tollgate/data:${APP}`);
  for (const d of byKind(objs, 'Deployment')) {
    const tsc = d.spec.template.spec.topologySpreadConstraints;
    assert.deepEqual(tsc.map((t) => t.topologyKey), ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    for (const t of tsc) assert.deepEqual(t.labelSelector.matchLabels, d.spec.selector.matchLabels, 'spreads its own pods');
  }
  assert.equal(byKind(objs, 'Ingress').length, 0);
  const job = byKind(objs, 'Job')[0];
  assert.ok(job.spec.activeDeadlineSeconds < 300, 'the Job fails by itself before Helm\'s default --timeout (5 min) gives up on it');
  assert.equal(byKind(objs, 'ServiceMonitor').length, 0);
  // the generated secrets are well formed for the binaries
  const s = named(objs, 'Secret', 'tg-tollgate');
  const dec = (k) => Buffer.from(s.data[k], 'base64').toString();
  assert.match(dec('master-key'), /^[0-9a-f]{64}$/, 'TOLLGATE_MASTER_KEY: 64 hex characters');
  assert.ok(dec('jwt-secret').length >= 32 && dec('jwt-secret').length <= 255, 'TOLLGATE_JWT_SECRET: 32 to 255 bytes');
  assert.ok(dec('dp-token').length >= 32);
  assert.ok(dec('admin-password').length >= 16);
  assert.equal(dec('admin-email'), 'admin@example.com');
  assert.equal(s.metadata.annotations['helm.sh/resource-policy'], 'keep', 'an uninstall keeps the master key');
  // one URL for both: the migration Secret holds it too
  const m = named(objs, 'Secret', 'tg-tollgate-migrate');
  assert.equal(Buffer.from(m.data['migration-url'], 'base64').toString(), DB_URL);
});

test('a separate owner URL goes to the migration Job only', async () => {
  const objs = render([...DB, '--set', `postgresql.migrationUrl=${OWNER_URL}`]);
  await checkAll(objs, { appVersion: APP });
  const m = named(objs, 'Secret', 'tg-tollgate-migrate');
  assert.equal(Buffer.from(m.data['migration-url'], 'base64').toString(), OWNER_URL);
  const db = named(objs, 'Secret', 'tg-tollgate-db');
  assert.equal(Buffer.from(db.data['database-url'], 'base64').toString(), DB_URL);
  assert.equal(hookOf(db), null, 'the servers\' URL is a release object, not a hook deleted on each upgrade');
  const job = byKind(objs, 'Job')[0];
  const ref = job.spec.template.spec.containers[0].env.find((e) => e.name === 'TOLLGATE_DATABASE_URL').valueFrom.secretKeyRef;
  assert.deepEqual(ref, { name: 'tg-tollgate-migrate', key: 'migration-url' });
  for (const d of byKind(objs, 'Deployment').filter((x) => x.metadata.labels['app.kubernetes.io/component'] === 'control')) {
    const r = d.spec.template.spec.containers[0].env.find((e) => e.name === 'TOLLGATE_DATABASE_URL').valueFrom.secretKeyRef;
    assert.deepEqual(r, { name: 'tg-tollgate-db', key: 'database-url' });
  }
});

test('existing Secrets: nothing generated, every reference points at them', async () => {
  const objs = render(['--set', 'postgresql.existingSecret=pg-creds', '--set', 'postgresql.existingSecretKey=app-url',
    '--set', 'postgresql.existingSecretMigrationKey=owner-url', '--set', 'secrets.existingSecret=tollgate-secrets']);
  await checkAll(objs, { appVersion: APP, existingSecrets: ['pg-creds', 'tollgate-secrets'] });
  assert.deepEqual(byKind(objs, 'Secret'), [], 'no Secret rendered at all');
  const refs = new Set();
  for (const o of objs) {
    const spec = o.kind === 'Pod' ? o.spec : o.spec?.template?.spec;
    for (const c of spec?.containers || []) {
      for (const e of c.env || []) if (e.valueFrom?.secretKeyRef) refs.add(`${e.name}=${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`);
    }
  }
  assert.deepEqual([...refs].sort(), [
    'TOLLGATE_ADMIN_EMAIL=tollgate-secrets/admin-email', 'TOLLGATE_ADMIN_PASSWORD=tollgate-secrets/admin-password',
    'TOLLGATE_DATABASE_URL=pg-creds/app-url', 'TOLLGATE_DATABASE_URL=pg-creds/owner-url',
    'TOLLGATE_DP_TOKEN=tollgate-secrets/dp-token', 'TOLLGATE_JWT_SECRET=tollgate-secrets/jwt-secret',
    'TOLLGATE_MASTER_KEY=tollgate-secrets/master-key']);
});

test('ingress on for both planes, with TLS: each backs onto its plane\'s Service port', async () => {
  const objs = render([...DB,
    '--set', 'controlPlane.ingress.enabled=true', '--set', 'controlPlane.ingress.tlsSecretName=admin-tls',
    '--set', 'controlPlane.ingress.className=nginx',
    '--set', 'dataPlane.ingress.enabled=true', '--set', 'dataPlane.ingress.host=llm.example.com',
    '--set-string', 'dataPlane.ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-buffering=off']);
  await checkAll(objs, { appVersion: APP });
  const ings = byKind(objs, 'Ingress');
  assert.equal(ings.length, 2);
  for (const ing of ings) {
    const b = ing.spec.rules[0].http.paths[0].backend.service;
    const svc = named(objs, 'Service', b.name);
    assert.ok(svc, `Ingress ${ing.metadata.name} backs onto an existing Service`);
    assert.ok(svc.spec.ports.some((p) => p.name === b.port.name), 'and one of its ports');
    assert.equal(svc.metadata.labels['app.kubernetes.io/component'], ing.metadata.labels['app.kubernetes.io/component']);
  }
  const admin = component(objs, 'Ingress', 'control');
  assert.deepEqual(admin.spec.tls, [{ hosts: ['tollgate-admin.example.com'], secretName: 'admin-tls' }]);
  assert.equal(admin.spec.ingressClassName, 'nginx');
  assert.equal(component(objs, 'Ingress', 'data').metadata.annotations['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
});

test('Gateway API: an HTTPRoute per plane onto its Service, and one without a Gateway is refused', async () => {
  const objs = render([...DB, '--set', 'dataPlane.httpRoute.enabled=true', '--set', 'dataPlane.httpRoute.parentRefs[0].name=public',
    '--set', 'dataPlane.httpRoute.parentRefs[0].namespace=gateways', '--set', 'dataPlane.httpRoute.hostnames[0]=llm.example.com',
    '--set', 'controlPlane.httpRoute.enabled=true', '--set', 'controlPlane.httpRoute.parentRefs[0].name=internal']);
  await checkAll(objs, { appVersion: APP });
  const routes = byKind(objs, 'HTTPRoute');
  assert.equal(routes.length, 2);
  for (const r of routes) {
    const b = r.spec.rules[0].backendRefs[0];
    const svc = named(objs, 'Service', b.name);
    assert.ok(svc && svc.spec.ports.some((p) => p.port === b.port), `${r.metadata.name} routes to a Service port`);
  }
  const bad = template([...DB, '--set', 'dataPlane.httpRoute.enabled=true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /httpRoute\.parentRefs/);
});

test('autoscaling off: no HPA, the Deployment carries its replicas', async () => {
  const objs = render([...DB, '--set', 'dataPlane.autoscaling.enabled=false', '--set', 'dataPlane.replicas=5']);
  await checkAll(objs, { appVersion: APP });
  assert.equal(byKind(objs, 'HorizontalPodAutoscaler').length, 0);
  assert.equal(component(objs, 'Deployment', 'data').spec.replicas, 5);
});

test('a single replica of each plane, PDBs that still let a node drain', async () => {
  const objs = render([...DB, '--set', 'controlPlane.replicas=1', '--set', 'dataPlane.autoscaling.enabled=false',
    '--set', 'dataPlane.replicas=1']);
  await checkAll(objs, { appVersion: APP });
  assert.equal(component(objs, 'Deployment', 'control').spec.replicas, 1);
  assert.equal(component(objs, 'Deployment', 'data').spec.replicas, 1);
  for (const pdb of byKind(objs, 'PodDisruptionBudget')) {
    assert.equal(pdb.spec.maxUnavailable, 1, 'maxUnavailable 1: with one pod, an eviction is still allowed');
    assert.equal(pdb.spec.minAvailable, undefined);
  }
});

test('ServiceMonitor: rendered when enabled and the cluster serves monitoring.coreos.com/v1, only then', async () => {
  const on = ['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=prom'];
  const withApi = render([...DB, ...on, '--api-versions', 'monitoring.coreos.com/v1']);
  await checkAll(withApi, { appVersion: APP });
  const [sm] = byKind(withApi, 'ServiceMonitor');
  assert.ok(sm);
  assert.equal(sm.metadata.labels.release, 'prom');
  const scraped = byKind(withApi, 'Service').filter((s) => {
    const l = s.metadata.labels;
    return sm.spec.selector.matchExpressions.every((e) => e.values.includes(l[e.key]));
  });
  assert.equal(scraped.length, 2, 'both planes\' Services are scraped');
  for (const s of scraped) assert.ok(s.spec.ports.some((p) => p.name === sm.spec.endpoints[0].port));
  assert.equal(sm.spec.endpoints[0].path, '/metrics');
  assert.equal(byKind(render([...DB, ...on]), 'ServiceMonitor').length, 0, 'no Prometheus operator: nothing to refuse');
});

test('a 53-character release name (Helm\'s longest) keeps every name and label within 63', async () => {
  const release = 'a-very-long-release-name-for-a-platform-team-abcdefgh';
  assert.equal(release.length, 53);
  const objs = render([...DB, '--set', 'dataPlane.ingress.enabled=true', '--set', 'controlPlane.ingress.enabled=true',
    '--set', 'metrics.serviceMonitor.enabled=true', '--api-versions', 'monitoring.coreos.com/v1'], { release });
  await checkAll(objs, { appVersion: APP });
  const names = objs.map((o) => `${o.kind}/${o.metadata.name}`);
  assert.equal(new Set(names).size, names.length, 'no two objects of a kind share a name after truncation');
  // and a namespace-qualified name in the data plane's control URL still resolves to the Service
});

test('the test hook asks both planes\' /healthz through their Services, without a shell', () => {
  const objs = render(DB);
  const pod = byKind(objs, 'Pod')[0];
  assert.deepEqual(hookOf(pod).events, ['test']);
  const c = pod.spec.containers[0];
  assert.deepEqual(c.command, ['curl'], 'exec form, no shell');
  assert.ok(c.args.includes('--fail') && c.args.includes('--fail-early'), 'any failed URL fails the pod');
  const urls = c.args.filter((a) => a.startsWith('http://'));
  const want = byKind(objs, 'Service').map((s) => `http://${s.metadata.name}:${s.spec.ports[0].port}/healthz`).sort();
  assert.deepEqual(urls.sort(), want);
  assert.match(c.image, /^[^:]+\/curl:\d+\.\d+\.\d+$/, 'an exact curl tag');
});

test('values.yaml documents every setting on the line(s) above it', () => {
  const lines = readFileSync(path.join(CHART, 'values.yaml'), 'utf8').split('\n');
  const indent = (l) => /^\s*/.exec(l)[0].length;
  const commented = (i) => i > 0 && /^\s*#/.test(lines[i - 1]);
  const undocumented = [];
  lines.forEach((l, i) => {
    const m = /^(\s*)([A-Za-z][\w-]*):(.*)$/.exec(l);
    if (!m || m[3].trim() === '') return; // a section: its keys carry the comments
    if (commented(i)) return;
    // a key inside a documented default map (resources: requests/limits) is that map's example
    for (let j = i - 1, want = indent(l); j >= 0 && want > 0; j--) {
      if (lines[j].trim() === '' || /^\s*#/.test(lines[j]) || indent(lines[j]) >= want) continue;
      want = indent(lines[j]);
      if (/^\s*resources:\s*$/.test(lines[j]) && commented(j)) return;
    }
    undocumented.push(`${i + 1}: ${l.trim()}`);
  });
  assert.deepEqual(undocumented, []);
  assert.ok(YAML.parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')).postgresql);
});
