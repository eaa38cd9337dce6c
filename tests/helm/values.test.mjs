// values.test.mjs: what the chart refuses and why (schema, template checks), `helm lint --strict`,
// the chart's versions against the project's, the secrets' lookup, and a check that the strict
// Kubernetes validation in lib/chart.mjs does refuse bad objects (so a pass above means something).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { CHART, DB_URL, byKind, cmakeVersion, helm, named, notes, template, validateObject } from './lib/chart.mjs';

const DB = ['--set', `postgresql.url=${DB_URL}`];

function refused(args, pattern) {
  const r = template(args);
  assert.notEqual(r.code, 0, `helm template ${args.join(' ')} should fail`);
  assert.match(r.stderr, pattern);
  return r;
}

test('helm lint --strict passes with the defaults and with every option on', () => {
  for (const args of [DB, [...DB, '--set', 'controlPlane.ingress.enabled=true', '--set', 'dataPlane.ingress.enabled=true',
    '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'dataPlane.autoscaling.enabled=false',
    '--set', 'dataPlane.httpRoute.enabled=true', '--set', 'dataPlane.httpRoute.parentRefs[0].name=gw']]) {
    const r = helm(['lint', '--strict', CHART, ...args]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('Chart.yaml: appVersion is the project version, kubeVersion declared, apiVersion v2', () => {
  const chart = YAML.parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8'));
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.appVersion, cmakeVersion(), 'Chart.yaml appVersion equals CMakeLists.txt project VERSION');
  assert.equal(chart.kubeVersion, '>=1.30.0-0');
  assert.ok(chart.description.length > 40);
  assert.equal(chart.dependencies, undefined, 'no subchart (no bundled database)');
  // Helm enforces kubeVersion: a 1.29 cluster (no lifecycle sleep action by default) is refused
  refused([...DB, '--kube-version', '1.29.9'], /chart requires kubeVersion: >=1\.30\.0-0/);
  assert.equal(template([...DB, '--kube-version', '1.30.0']).code, 0);
});

test('no database given: refused with what to set', () => {
  refused([], /set postgresql\.url .* or postgresql\.existingSecret/);
});

test('the image tag `latest` is refused by the schema, and by the templates when the schema is skipped', () => {
  refused([...DB, '--set-string', 'image.tag=latest'], /image\.tag/);
  refused([...DB, '--set-string', 'image.tag=latest', '--skip-schema-validation'], /`latest` is refused/);
  refused([...DB, '--set', 'tests.image=curlimages/curl:latest'], /tests\.image/);
  const r = template([...DB, '--set-string', 'image.tag=0.1.0-rc1', '--set', 'image.registry=ghcr.io/acme/']);
  assert.equal(r.code, 0, r.stderr);
  const images = byKind(r.objects, 'Deployment').map((d) => d.spec.template.spec.containers[0].image).sort();
  assert.deepEqual(images, ['ghcr.io/acme/tollgate/control:0.1.0-rc1', 'ghcr.io/acme/tollgate/data:0.1.0-rc1']);
});

test('the schema refuses wrong types, unknown keys and bad secrets, naming the value', () => {
  refused([...DB, '--set', 'controlPlane.replicas=abc'], /controlPlane\.replicas: Invalid type\. Expected: integer, given: string/);
  refused([...DB, '--set', 'controlPlane.replicas=0'], /controlPlane\.replicas/);
  refused([...DB, '--set', 'controlPlane.replica=3'], /Additional property replica is not allowed/);
  refused([...DB, '--set', 'nosuchkey=1'], /Additional property nosuchkey is not allowed/);
  refused([...DB, '--set', 'dataPlane.autoscaling.maxReplica=3'], /Additional property maxReplica is not allowed/);
  refused([...DB, '--set', 'dataPlane.resources.limits.gpu=1'], /Additional property gpu is not allowed/);
  refused([...DB, '--set', 'secrets.masterKey=abc'], /secrets\.masterKey/);
  refused([...DB, '--set', 'secrets.jwtSecret=short'], /secrets\.jwtSecret/);
  refused([...DB, '--set', 'image.pullPolicy=Sometimes'], /image\.pullPolicy/);
  refused([...DB, '--set', 'dataPlane.logLevel=loud'], /dataPlane\.logLevel/);
});

test('a grace period that does not outlast preStop + drain, and an autoscaler with min > max, are refused', () => {
  refused([...DB, '--set', 'dataPlane.terminationGracePeriodSeconds=30'], /terminationGracePeriodSeconds \(30\) must exceed/);
  refused([...DB, '--set', 'dataPlane.drainTimeoutMs=35001'], /must exceed/);
  assert.equal(template([...DB, '--set', 'dataPlane.drainTimeoutMs=34000']).code, 0, '5 + 34 < 40');
  refused([...DB, '--set', 'dataPlane.autoscaling.minReplicas=5', '--set', 'dataPlane.autoscaling.maxReplicas=3'],
    /minReplicas exceeds maxReplicas/);
});

test('secrets: generated when not given (each render anew), kept from the cluster with lookup, taken as given', () => {
  const a = template(DB), b = template(DB);
  const sa = named(a.objects, 'Secret', 'tg-tollgate'), sb = named(b.objects, 'Secret', 'tg-tollgate');
  for (const k of ['master-key', 'jwt-secret', 'dp-token', 'admin-password']) {
    assert.notEqual(sa.data[k], sb.data[k], `${k} is random (helm template sees no cluster, so nothing to keep)`);
  }
  // `helm template` cannot reach a cluster: what keeps them across upgrades is the lookup of the
  // release's own Secret, read before anything is generated, one key at a time
  const src = readFileSync(path.join(CHART, 'templates/secret.yaml'), 'utf8');
  assert.match(src, /\$found := lookup "v1" "Secret" \.Release\.Namespace \$name/);
  for (const [v, key] of [['secrets.masterKey', 'masterKey'], ['secrets.jwtSecret', 'jwtSecret'], ['secrets.dpToken', 'dpToken'],
    ['admin.password', 'adminPassword']]) {
    const line = src.split('\n').find((l) => l.includes(`.Values.${v} |`));
    assert.ok(line, `${v} is rendered`);
    const given = line.indexOf(`.Values.${v}`), kept = line.indexOf(`index $old $k.${key}`), made = line.indexOf('rand');
    assert.ok(given >= 0 && kept > given && made > kept, `${v}: the given value, else the stored one, else a new one`);
  }
  // given values are used as they are
  const key = 'ab'.repeat(32);
  const c = template([...DB, '--set', `secrets.masterKey=${key}`, '--set', 'admin.password=correct-horse']);
  const sc = named(c.objects, 'Secret', 'tg-tollgate');
  assert.equal(Buffer.from(sc.data['master-key'], 'base64').toString(), key);
  assert.equal(Buffer.from(sc.data['admin-password'], 'base64').toString(), 'correct-horse');
  // an existing Secret suppresses the generation
  const d = template([...DB, '--set', 'secrets.existingSecret=mine']);
  assert.equal(named(d.objects, 'Secret', 'tg-tollgate'), undefined);
});

test('NOTES.txt: the dashboard URL and how to read the first admin\'s password', () => {
  const n = notes([...DB, '--set', 'controlPlane.ingress.enabled=true', '--set', 'controlPlane.ingress.tlsSecretName=t']);
  assert.match(n, /https:\/\/tollgate-admin\.example\.com\//);
  assert.match(n, /kubectl --namespace gateway get secret tg-tollgate -o jsonpath='\{\.data\.admin-password\}' \| base64 -d/);
  const plain = notes(DB);
  assert.match(plain, /port-forward service\/tg-tollgate-control 8081:8081/);
  assert.match(plain, /http:\/\/tg-tollgate-data\.gateway\.svc:8080\/v1/);
  const mine = notes([...DB, '--set', 'secrets.existingSecret=mine']);
  assert.match(mine, /get secret mine -o jsonpath='\{\.data\.admin-password\}'/);
});

test('the strict validation refuses an unknown field, a wrong type, a missing field and an unknown kind', async () => {
  const { objects } = template(DB);
  const dep = objects.find((o) => o.kind === 'Deployment');
  assert.deepEqual(await validateObject(dep), []);
  const typo = structuredClone(dep);
  typo.spec.template.spec.containers[0].livenessprobe = typo.spec.template.spec.containers[0].livenessProbe;
  assert.deepEqual(await validateObject(typo), [`Deployment/${dep.metadata.name}: /spec/template/spec/containers/0/livenessprobe: unknown field`]);
  const nested = structuredClone(dep);
  nested.spec.template.spec.securityContext.runAsNonroot = true;
  assert.match((await validateObject(nested)).join(), /securityContext\/runAsNonroot: unknown field/);
  const top = structuredClone(dep);
  top.spec.replica = 2;
  assert.match((await validateObject(top)).join(), /\/spec\/replica: unknown field/);
  const type = structuredClone(dep);
  type.spec.replicas = 'two';
  assert.match((await validateObject(type)).join(), /\/spec\/replicas type \{"type":"integer"\}/);
  const missing = structuredClone(dep);
  delete missing.spec.selector;
  assert.match((await validateObject(missing)).join(), /required \{"missingProperty":"selector"\}/);
  const hpa = structuredClone(objects.find((o) => o.kind === 'HorizontalPodAutoscaler'));
  hpa.apiVersion = 'autoscaling/v2beta2';
  assert.match((await validateObject(hpa)).join(), /no schema for apiVersion autoscaling\/v2beta2/);
  // maps stay maps: any label key is fine
  const labels = structuredClone(dep);
  labels.metadata.labels['example.com/anything'] = 'x';
  assert.deepEqual(await validateObject(labels), []);
});

test('every chart value the docs name exists in values.yaml', () => {
  const values = YAML.parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8'));
  const readme = readFileSync(path.join(CHART, '../../README.md'), 'utf8');
  const k8s = readme.slice(readme.indexOf('## Kubernetes'), readme.indexOf('## Tests'));
  assert.ok(k8s.length > 1000, 'README has a Kubernetes section');
  const docs = [k8s, readFileSync(path.join(CHART, 'README.md'), 'utf8'),
    readFileSync(path.join(CHART, '../../docs/scaling.md'), 'utf8')].join('\n');
  const roots = Object.keys(values).join('|');
  const names = new Set(docs.match(new RegExp(`(?<![\\w/.-])(?:${roots}|\\*)\\.[A-Za-z][\\w.]*\\w(?![\\w.]*/)`, 'g')));
  assert.ok(names.size > 20, `found the values the docs name (${names.size})`);
  const missing = [];
  for (const n of names) {
    const [first, ...rest] = n.split('.');
    for (const root of first === '*' ? ['controlPlane', 'dataPlane'] : [first]) {
      let v = values[root];
      for (const p of rest) v = v?.[p];
      if (v === undefined) missing.push(first === '*' ? `${n} (${root})` : n);
    }
  }
  assert.deepEqual(missing, []);
});

test('values.schema.json closes every object the chart defines (additionalProperties: false)', () => {
  const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
  // Kubernetes objects passed through to the pod spec as they are: the API server checks them
  const passthrough = /\.(tolerations\[\]|affinity|topologySpreadConstraints\[\])$/;
  const open = [];
  const walk = (node, where) => {
    if (node.type === 'object' || (Array.isArray(node.type) && node.type.includes('object'))) {
      if (node.properties) {
        if (node.additionalProperties !== false) open.push(where);
        for (const [k, v] of Object.entries(node.properties)) walk(v, `${where}.${k}`);
      } else if (typeof node.additionalProperties === 'object') {
        walk(node.additionalProperties, `${where}{}`); // a map (labels, annotations) of typed values
      } else if (!passthrough.test(where)) {
        open.push(where);
      }
    }
    if (node.items) walk(node.items, `${where}[]`);
  };
  walk(schema, '');
  assert.deepEqual(open, []);
});
