// invariants.mjs: what must hold for every set of values the chart renders, asserted over the
// parsed objects (not over text).
import assert from 'node:assert/strict';
import { byKind, hookOf, named, podSpecs, selects, validateAll } from './chart.mjs';

const LABELS = ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version',
  'app.kubernetes.io/component', 'app.kubernetes.io/part-of', 'app.kubernetes.io/managed-by', 'helm.sh/chart'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
// an env var whose name says it carries a secret, or the database URL (it holds a password)
const SECRET_ENV = /^TOLLGATE_(.*(KEY|SECRET|TOKEN|PASSWORD)|DATABASE_URL|ADMIN_EMAIL)$/;

export async function checkAll(objects, { appVersion, existingSecrets = [] } = {}) {
  assert.ok(objects.length > 0, 'something rendered');
  assert.deepEqual(await validateAll(objects), [], 'every object is valid for its Kubernetes schema');
  checkNamesAndLabels(objects, appVersion);
  checkPods(objects, appVersion);
  checkServices(objects);
  checkPdbAndHpa(objects);
  checkSecrets(objects, existingSecrets);
  checkHooks(objects, existingSecrets);
  checkDrain(objects);
}

function checkNamesAndLabels(objects, appVersion) {
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.name}`;
    assert.match(o.metadata.name, DNS_LABEL, `${id}: a DNS label of at most 63 characters`);
    const labels = o.metadata.labels || {};
    for (const l of LABELS) assert.ok(labels[l], `${id} has label ${l}`);
    assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', id);
    assert.equal(labels['app.kubernetes.io/part-of'], 'tollgate', id);
    assert.equal(labels['app.kubernetes.io/version'], appVersion, id);
    const all = { ...labels };
    for (const { podLabels } of podSpecs([o])) Object.assign(all, podLabels);
    for (const [k, v] of Object.entries(all)) {
      assert.ok(String(v).length <= 63, `${id}: label ${k} value within 63 characters`);
      assert.match(String(v), LABEL_VALUE, `${id}: label ${k}=${v} is a valid label value`);
    }
  }
}

function checkPods(objects, appVersion) {
  const pods = podSpecs(objects);
  assert.ok(pods.length >= 3, 'control, data and the migration Job run pods');
  for (const { owner, podSpec } of pods) {
    const id = `${owner.kind}/${owner.metadata.name}`;
    const psc = podSpec.securityContext;
    assert.equal(psc?.runAsNonRoot, true, `${id}: pod runAsNonRoot`);
    assert.equal(psc?.runAsUser, 10001, `${id}: pod runs as UID 10001`);
    assert.equal(psc?.seccompProfile?.type, 'RuntimeDefault', `${id}: pod seccomp RuntimeDefault`);
    assert.equal(podSpec.automountServiceAccountToken, false, `${id}: no API token mounted`);
    assert.equal(podSpec.hostNetwork ?? false, false, id);
    for (const c of [...(podSpec.initContainers || []), ...podSpec.containers]) {
      const cid = `${id} container ${c.name}`;
      const sc = c.securityContext || {};
      assert.equal(sc.runAsNonRoot, true, `${cid}: runAsNonRoot`);
      assert.equal(sc.runAsUser, 10001, `${cid}: UID 10001`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${cid}: no privilege escalation`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${cid}: read-only root filesystem`);
      assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${cid}: drops ALL capabilities`);
      assert.equal(sc.capabilities?.add, undefined, `${cid}: adds none`);
      assert.equal(sc.privileged ?? false, false, cid);
      assert.equal(sc.seccompProfile?.type, 'RuntimeDefault', `${cid}: seccomp`);
      assert.ok(c.resources?.requests?.memory && c.resources?.requests?.cpu, `${cid}: requests cpu and memory`);
      assert.ok(c.resources?.limits?.memory, `${cid}: a memory limit`);
      assert.ok(!/:latest$/.test(c.image) && /:[^/]+$/.test(c.image), `${cid}: image ${c.image} pinned by a tag, not latest`);
      for (const e of c.env || []) {
        if (SECRET_ENV.test(e.name)) {
          assert.equal(e.value, undefined, `${cid}: ${e.name} is not a plain value`);
          assert.ok(e.valueFrom?.secretKeyRef, `${cid}: ${e.name} comes from a Secret`);
        }
      }
      assert.equal(c.envFrom, undefined, `${cid}: no envFrom (a ConfigMap would carry secrets in plain text)`);
      if (owner.kind !== 'Deployment') continue;
      // long-running servers: probes on the declared port
      const ports = new Set((c.ports || []).flatMap((p) => [p.name, p.containerPort]));
      assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${cid}: liveness on /healthz`);
      assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${cid}: readiness on /readyz`);
      assert.equal(c.startupProbe?.httpGet?.path, '/healthz', `${cid}: a startup probe`);
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
        assert.ok(ports.has(p.httpGet.port), `${cid}: probe port ${p.httpGet.port} is a declared containerPort`);
      }
      assert.ok(c.lifecycle?.preStop?.sleep?.seconds > 0, `${cid}: a preStop sleep (no shell needed)`);
      const app = c.image.replace(/^.*:/, '');
      assert.equal(app, appVersion, `${cid}: image tag is the appVersion by default`);
    }
  }
}

function checkServices(objects) {
  const workloads = byKind(objects, 'Deployment');
  for (const svc of byKind(objects, 'Service')) {
    const id = `Service/${svc.metadata.name}`;
    const sel = { matchLabels: svc.spec.selector };
    const matched = workloads.filter((d) => selects(sel, d.spec.template.metadata.labels));
    assert.equal(matched.length, 1, `${id} selects the pods of exactly one workload`);
    const containers = matched[0].spec.template.spec.containers;
    for (const p of svc.spec.ports) {
      const target = p.targetPort ?? p.port;
      const hit = containers.some((c) => (c.ports || []).some((cp) => cp.name === target || cp.containerPort === target));
      assert.ok(hit, `${id} port ${p.port} targets declared containerPort ${target}`);
    }
  }
  for (const d of workloads) {
    assert.ok(selects(d.spec.selector, d.spec.template.metadata.labels), `Deployment/${d.metadata.name} selects its own pods`);
    const others = workloads.filter((x) => x !== d && selects(d.spec.selector, x.spec.template.metadata.labels));
    assert.deepEqual(others, [], `Deployment/${d.metadata.name}'s selector takes no other workload's pods`);
  }
}

function checkPdbAndHpa(objects) {
  const workloads = byKind(objects, 'Deployment');
  for (const pdb of byKind(objects, 'PodDisruptionBudget')) {
    const m = workloads.filter((d) => selects(pdb.spec.selector, d.spec.template.metadata.labels));
    assert.equal(m.length, 1, `PDB/${pdb.metadata.name} selects the pods of one existing workload`);
  }
  for (const hpa of byKind(objects, 'HorizontalPodAutoscaler')) {
    const ref = hpa.spec.scaleTargetRef;
    const d = named(objects, ref.kind, ref.name);
    assert.ok(d && ref.apiVersion === 'apps/v1', `HPA/${hpa.metadata.name} targets an existing ${ref.kind} ${ref.name}`);
    assert.equal(d.spec.replicas, undefined, `${ref.name}: replicas left to the HPA (an upgrade would reset them)`);
    assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
    const cpu = hpa.spec.metrics.find((m) => m.resource?.name === 'cpu');
    assert.ok(cpu, 'scales on CPU');
    for (const c of d.spec.template.spec.containers) assert.ok(c.resources.requests.cpu, 'a CPU request, which Utilization is a share of');
  }
}

function checkSecrets(objects, existingSecrets) {
  for (const cm of byKind(objects, 'ConfigMap')) {
    for (const k of Object.keys(cm.data || {})) assert.doesNotMatch(k, /key|secret|token|password|database/i, `ConfigMap/${cm.metadata.name} holds no secret`);
  }
  // every secretKeyRef names a rendered Secret with that key, or one the values said exists
  for (const { owner, podSpec } of podSpecs(objects)) {
    for (const c of podSpec.containers) {
      for (const e of c.env || []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        if (existingSecrets.includes(ref.name)) continue;
        const s = named(objects, 'Secret', ref.name);
        assert.ok(s, `${owner.kind}/${owner.metadata.name}: ${e.name} refers to Secret ${ref.name}, which is rendered`);
        assert.ok((s.data && ref.key in s.data) || (s.stringData && ref.key in s.stringData), `Secret ${ref.name} has key ${ref.key}`);
      }
    }
  }
}

function checkHooks(objects, existingSecrets) {
  const jobs = byKind(objects, 'Job');
  assert.equal(jobs.length, 1, 'one migration Job');
  const job = jobs[0];
  const h = hookOf(job);
  assert.ok(h, 'the Job is a hook');
  assert.deepEqual(h.events.sort(), ['pre-install', 'pre-upgrade'], 'it runs before install and before upgrade');
  assert.deepEqual(h.deletePolicy, ['before-hook-creation'], 'a failed Job stays for debugging until the next try');
  assert.ok(job.spec.backoffLimit >= 0 && job.spec.backoffLimit <= 3, 'bounded retries');
  assert.ok(job.spec.activeDeadlineSeconds > 0, 'a deadline');
  const pod = job.spec.template.spec;
  assert.equal(pod.restartPolicy, 'Never');
  const c = pod.containers[0];
  assert.equal(c.args[0], 'migrate', 'runs tollgate-control migrate');
  const wait = c.args.indexOf('--wait-db-s');
  assert.ok(wait > 0 && Number(c.args[wait + 1]) > 0, 'waits (bounded) for the database');
  assert.ok(Number(c.args[wait + 1]) < job.spec.activeDeadlineSeconds, 'the wait ends before the Job deadline');
  // what it needs exists before it: hooks of both events with a lower weight
  const needs = [named(objects, 'ServiceAccount', pod.serviceAccountName)];
  assert.ok(needs[0], `its ServiceAccount ${pod.serviceAccountName} is rendered`);
  for (const e of c.env) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref && !existingSecrets.includes(ref.name)) needs.push(named(objects, 'Secret', ref.name));
  }
  for (const n of needs) {
    const nh = hookOf(n);
    assert.ok(nh, `${n.kind}/${n.metadata.name} is a hook too (a plain object is created after pre-install hooks)`);
    assert.deepEqual(nh.events.sort(), ['pre-install', 'pre-upgrade'], `${n.kind}/${n.metadata.name} on both events`);
    assert.ok(nh.weight < h.weight, `${n.kind}/${n.metadata.name} (weight ${nh.weight}) before the Job (weight ${h.weight})`);
    // recreated on each run; removed once every hook succeeded (the owner's URL does not linger),
    // never on failure (the Job stays to be looked into, and still finds them)
    assert.deepEqual(nh.deletePolicy.sort(), ['before-hook-creation', 'hook-succeeded'], `${n.kind}/${n.metadata.name} delete policy`);
  }
  for (const o of objects) {
    if (['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Ingress', 'HTTPRoute'].includes(o.kind)) {
      assert.equal(hookOf(o), null, `${o.kind}/${o.metadata.name} is not a hook: it rolls after the Job succeeded`);
    }
  }
  const tests = objects.filter((o) => hookOf(o)?.events.includes('test'));
  assert.equal(tests.length, 1, 'one helm test pod');
}

function checkDrain(objects) {
  const data = byKind(objects, 'Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'data');
  assert.ok(data, 'a data-plane Deployment');
  const pod = data.spec.template.spec;
  const c = pod.containers[0];
  const i = c.args.indexOf('--drain-timeout-ms');
  assert.ok(i >= 0, 'the drain is set explicitly');
  const drainS = Number(c.args[i + 1]) / 1000;
  assert.ok(pod.terminationGracePeriodSeconds > c.lifecycle.preStop.sleep.seconds + drainS,
    `grace ${pod.terminationGracePeriodSeconds} s > preStop ${c.lifecycle.preStop.sleep.seconds} s + drain ${drainS} s`);
  const env = Object.fromEntries(c.env.map((e) => [e.name, e]));
  assert.equal(env.TOLLGATE_STATE_DIR.value, '/var/lib/tollgate');
  const mount = c.volumeMounts.find((m) => m.mountPath === '/var/lib/tollgate');
  assert.ok(mount, 'the state dir is mounted');
  const vol = pod.volumes.find((v) => v.name === mount.name);
  assert.ok(vol.emptyDir, 'the state dir is an emptyDir (the only writable path)');
  assert.equal(c.volumeMounts.length, 1, 'nothing else writable');
  const control = byKind(objects, 'Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'control');
  assert.equal(control.spec.template.spec.volumes, undefined, 'the control plane writes nothing');
  const ctlSvc = byKind(objects, 'Service').find((s) => s.metadata.labels['app.kubernetes.io/component'] === 'control');
  assert.equal(env.TOLLGATE_CONTROL_URL.value, `http://${ctlSvc.metadata.name}:${ctlSvc.spec.ports[0].port}`,
    'the data plane reaches the control plane through its Service');
}
