// chart.mjs: renders helm/tollgate with the real Helm 3 (scripts/lib/helm.sh puts it in the build
// dir; scripts/test passes its path as TOLLGATE_HELM), parses the output with `yaml`, and validates
// each object against the Kubernetes OpenAPI schemas compiled into kubernetes-models, strictly.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const CHART = path.join(ROOT, 'helm/tollgate');
export const HELM = process.env.TOLLGATE_HELM || path.join(ROOT, 'build-test/tools/helm');
export const DB_URL = 'postgresql://tollgate_server:server-secret@db.example.com:5432/tollgate';
export const OWNER_URL = 'postgresql://tollgate_owner:owner-secret@db.example.com:5432/tollgate';

if (!existsSync(HELM)) {
  throw new Error(`no helm at ${HELM}: run scripts/lib/helm.sh build-test/tools (scripts/test does)`);
}

// Helm keeps caches and config under $HOME; a private one keeps runs independent of the machine.
const helmHome = mkdtempSync(path.join(tmpdir(), 'tollgate-helm-'));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: path.join(helmHome, 'cache'),
  HELM_CONFIG_HOME: path.join(helmHome, 'config'),
  HELM_DATA_HOME: path.join(helmHome, 'data'),
};

export function helm(args) {
  const r = spawnSync(HELM, args, { env: helmEnv, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// `helm template RELEASE helm/tollgate ARGS`; {code, stdout, stderr, objects}
export function template(args = [], { release = 'tg', namespace = 'gateway' } = {}) {
  const r = helm(['template', release, CHART, '--namespace', namespace, ...args]);
  r.objects = r.code === 0 ? parseAll(r.stdout) : [];
  return r;
}

// NOTES.txt as `helm install` prints it (which needs a cluster): a copy of the chart renders it
// through `tpl` into a one-key document that `helm template` can show.
export function notes(args = [], { release = 'tg', namespace = 'gateway' } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-notes-'));
  cpSync(CHART, dir, { recursive: true });
  copyFileSync(path.join(dir, 'templates/NOTES.txt'), path.join(dir, 'notes-src.txt'));
  writeFileSync(path.join(dir, 'templates/zz-notes.yaml'), 'notes: {{ tpl (.Files.Get "notes-src.txt") . | toJson }}\n');
  const r = helm(['template', release, dir, '--namespace', namespace, '--show-only', 'templates/zz-notes.yaml', ...args]);
  if (r.code !== 0) throw new Error(r.stderr);
  return YAML.parse(r.stdout).notes;
}

// the rendered objects (the test hook included), empty documents dropped
export function parseAll(text) {
  const docs = YAML.parseAllDocuments(text);
  for (const d of docs) if (d.errors.length) throw new Error(`bad YAML from helm: ${d.errors[0].message}`);
  return docs.map((d) => d.toJS()).filter((o) => o && typeof o === 'object');
}

// The chart's own version of the project: CMakeLists.txt's project(... VERSION x.y.z)
export function cmakeVersion() {
  const m = /project\(tollgate VERSION (\d+\.\d+\.\d+)/.exec(readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8'));
  if (!m) throw new Error('no project VERSION in CMakeLists.txt');
  return m[1];
}

// ---- validation ------------------------------------------------------------------------------

// The kinds the chart may render and the compiled schema of each. All are served by Kubernetes
// 1.30 (Chart.yaml's kubeVersion floor); the two custom resources are the Gateway API's and the
// Prometheus operator's. A kind not listed here is an error, so a new one is added on purpose.
const NM = path.join(ROOT, 'node_modules');
const SCHEMAS = {
  'v1/Secret': 'kubernetes-models/_schemas/IoK8sApiCoreV1Secret.js',
  'v1/Service': 'kubernetes-models/_schemas/IoK8sApiCoreV1Service.js',
  'v1/ServiceAccount': 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount.js',
  'v1/Pod': 'kubernetes-models/_schemas/IoK8sApiCoreV1Pod.js',
  'v1/ConfigMap': 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap.js',
  'apps/v1/Deployment': 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment.js',
  'batch/v1/Job': 'kubernetes-models/_schemas/IoK8sApiBatchV1Job.js',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget.js',
  'autoscaling/v2/HorizontalPodAutoscaler': 'kubernetes-models/_schemas/IoK8sApiAutoscalingV2HorizontalPodAutoscaler.js',
  'networking.k8s.io/v1/Ingress': 'kubernetes-models/_schemas/IoK8sApiNetworkingV1Ingress.js',
  'gateway.networking.k8s.io/v1/HTTPRoute': '@kubernetes-models/gateway-api/_schemas/IoK8sSigsGatewayApiApisV1HTTPRoute.js',
  'monitoring.coreos.com/v1/ServiceMonitor':
    '@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js',
};

const loaded = new Map();
async function validatorFor(apiVersion, kind) {
  const rel = SCHEMAS[`${apiVersion}/${kind}`];
  if (!rel) return null;
  if (!loaded.has(rel)) loaded.set(rel, (await import(pathToFileURL(path.join(NM, rel)).href)).validate);
  return loaded.get(rel);
}

// The compiled validators check the fields a schema declares and ignore any other, as the JSON
// schemas do (they carry no additionalProperties: false). The API server refuses unknown fields
// (kubectl --validate=strict, server-side field validation), so we do too: each object is
// wrapped in a Proxy that records which of its properties the validator reads; a property it
// never read is not in the schema. Maps (labels, annotations, Secret data) are iterated by the
// validator, which counts as reading every key.
function track(obj, where, seen) {
  if (obj === null || typeof obj !== 'object') return obj;
  const rec = { where, obj, read: new Set(), all: false };
  seen.push(rec);
  const wrapped = new Map();
  return new Proxy(obj, {
    get(t, k, r) {
      const v = Reflect.get(t, k, r);
      if (typeof k !== 'string') return v;
      rec.read.add(k);
      if (v === null || typeof v !== 'object') return v;
      if (!wrapped.has(k)) wrapped.set(k, track(v, `${where}/${k}`, seen));
      return wrapped.get(k);
    },
    has(t, k) { if (typeof k === 'string') rec.read.add(k); return Reflect.has(t, k); },
    ownKeys(t) { rec.all = true; return Reflect.ownKeys(t); },
  });
}

// Errors of one object as strings ("Deployment/x: /spec/...: message"); [] when valid.
export async function validateObject(o) {
  const id = `${o?.kind}/${o?.metadata?.name}`;
  const validate = await validatorFor(o?.apiVersion, o?.kind);
  if (!validate) return [`${id}: no schema for apiVersion ${o?.apiVersion} kind ${o?.kind}`];
  const copy = structuredClone(o);
  const seen = [];
  const ok = validate(track(copy, '', seen));
  // the compiled validators carry no messages: the keyword and its parameters say what failed
  const errors = ok ? [] : (validate.errors || []).map((e) =>
    `${id}: ${e.instancePath || '/'} ${e.message || `${e.keyword} ${JSON.stringify(e.params)}`}`);
  for (const rec of seen) {
    if (rec.all) continue;
    for (const k of Object.keys(rec.obj)) {
      if (!rec.read.has(k)) errors.push(`${id}: ${rec.where}/${k}: unknown field`);
    }
  }
  return errors;
}

export async function validateAll(objects) {
  const errors = [];
  for (const o of objects) errors.push(...await validateObject(o));
  return errors;
}

// ---- helpers over parsed objects ---------------------------------------------------------------

export const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);
export const named = (objects, kind, name) => objects.find((o) => o.kind === kind && o.metadata.name === name);

// [{owner, podSpec, podLabels}] for every object that runs pods
export function podSpecs(objects) {
  const out = [];
  for (const o of objects) {
    if (o.kind === 'Deployment' || o.kind === 'Job') {
      out.push({ owner: o, podSpec: o.spec.template.spec, podLabels: o.spec.template.metadata?.labels || {} });
    } else if (o.kind === 'Pod') {
      out.push({ owner: o, podSpec: o.spec, podLabels: o.metadata.labels || {} });
    }
  }
  return out;
}

export function selects(selector, labels) {
  const ml = selector?.matchLabels || {};
  if (!Object.keys(ml).length && !(selector?.matchExpressions || []).length) return false;
  for (const [k, v] of Object.entries(ml)) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions || []) {
    if (e.operator === 'In' && !e.values.includes(labels[e.key])) return false;
    if (e.operator === 'NotIn' && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !(e.key in labels)) return false;
    if (e.operator === 'DoesNotExist' && e.key in labels) return false;
  }
  return true;
}

export function hookOf(o) {
  const a = o.metadata.annotations || {};
  if (!a['helm.sh/hook']) return null;
  return {
    events: a['helm.sh/hook'].split(',').map((s) => s.trim()),
    weight: Number(a['helm.sh/hook-weight'] || 0),
    deletePolicy: (a['helm.sh/hook-delete-policy'] || '').split(',').map((s) => s.trim()).filter(Boolean),
  };
}
