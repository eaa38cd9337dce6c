#!/usr/bin/env node
// bench/catalog/run.mjs: the control plane with a big model catalog. Imports a catalog of
// BENCH_CATALOG_MODELS models (the built-in file's entries and generated copies of them under
// other names, in a temp file: catalog/models.json is not touched), makes BENCH_ROUTES routes of
// three targets each over ten providers (catalog models, some admin-priced, some unpriced), then
// times GET /api/v1/routes, GET /api/v1/routes/{id}/prices and the snapshot build (GET
// /dp/v1/snapshot) and a recommendations report, and prints EXPLAIN ANALYZE of the queries behind them. Not a test: nothing
// here is asserted. Run: TOLLGATE_BIN=build/bin node bench/catalog/run.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startControl, usageEvent } from '../../tests/integration/lib/control.mjs';
import { BIN } from '../../tests/integration/lib/harness.mjs';

const MODELS = Number(process.env.BENCH_CATALOG_MODELS || 2000);
const ROUTES = Number(process.env.BENCH_ROUTES || 300);
const REPS = Number(process.env.BENCH_REPS || 5);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const builtin = JSON.parse(readFileSync(path.join(root, 'catalog/models.json'), 'utf8'));

const catalog = structuredClone(builtin);
catalog.version = `${builtin.version}-bench`;
const chat = builtin.models.filter((m) => m.mode === 'chat');
for (let i = 0; catalog.models.length < MODELS; i++) {
  const m = structuredClone(chat[i % chat.length]);
  m.model = `${m.model}-bench-${i}`;
  catalog.models.push(m);
}
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tg-bench-catalog-'));
const file = path.join(tmp, 'catalog.json');
writeFileSync(file, JSON.stringify(catalog));

const cp = await startControl();
const cli = spawnSync(path.join(BIN, 'tollgate-control'), ['catalog', 'import', file], {
  env: { ...process.env, TOLLGATE_DATABASE_URL: cp.dbUrl }, encoding: 'utf8' });
if (cli.status !== 0) throw new Error(`catalog import: ${cli.stderr}`);
const admin = await cp.login();
async function api(method, url, body) {
  const r = await cp.api(method, url, { token: admin, body });
  if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${r.text}`);
  return r.body;
}
// OpenAI-kind providers on api.openai.com are the catalog's "openai" vendor
const openai = catalog.models.filter((m) => m.kind === 'openai' && (m.vendor ?? 'openai') === 'openai' && m.mode === 'chat');
const anthropic = catalog.models.filter((m) => m.kind === 'anthropic' && m.mode === 'chat');
const providers = [];
for (let i = 0; i < 10; i++) {
  const kind = i % 2 ? 'anthropic' : 'openai';
  const base = kind === 'openai' ? 'https://api.openai.com/v1' : 'https://api.anthropic.com';
  providers.push({ kind, id: (await api('POST', '/api/v1/providers', {
    name: `p${i}`, kind, base_url: base, credentials: { api_key: 'sk-bench' } })).id });
}
for (let r = 0; r < ROUTES; r++) {
  const targets = [];
  for (let k = 0; k < 3; k++) {
    const p = providers[(r + k) % providers.length];
    const pool = p.kind === 'openai' ? openai : anthropic;
    // one target in ten is a model no catalog knows (unpriced)
    const model = (r + k) % 10 === 9 ? `unknown-${r}-${k}` : pool[(r * 3 + k) % pool.length].model;
    targets.push({ provider_id: p.id, model });
  }
  await api('POST', '/api/v1/routes', { alias: `bench-${r}`, strategy: 'cheapest', targets });
  if (r % 20 === 0) {
    await api('PUT', '/api/v1/prices', { provider_id: targets[0].provider_id, model: targets[0].model,
      input_per_mtok: 1, output_per_mtok: 2 });
  }
}
const routes = (await api('GET', '/api/v1/routes?limit=200'));
const routeList = routes.data ?? routes.items ?? routes;
const one = routeList[0].id;

async function time(label, fn) {
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((x, y) => x - y);
  console.log(`${label.padEnd(44)} median ${ms[ms.length >> 1].toFixed(1)} ms  (min ${ms[0].toFixed(1)}, max ${ms[ms.length - 1].toFixed(1)})`);
}
console.log(`catalog ${catalog.models.length} models, ${ROUTES} routes x 3 targets, 10 providers; ${REPS} runs each`);
await time('GET /api/v1/routes?limit=200', () => api('GET', '/api/v1/routes?limit=200'));
await time('GET /api/v1/routes/{id}/prices', () => api('GET', `/api/v1/routes/${one}/prices`));
await time('GET /dp/v1/snapshot (build)', async () => {
  const r = await fetch(`${cp.url}/dp/v1/snapshot`, { headers: { authorization: 'Bearer test-dp-token',
    'x-tollgate-dataplane': 'bench', 'x-tollgate-version': 'bench' } });
  if (r.status !== 200) throw new Error(`snapshot: ${r.status}`);
  await r.arrayBuffer();
});

// a month of one tenant's usage on 30 routes, in three prompt sizes each (with the catalog's
// long-context thresholds between them), for the recommendations report
const tenant = await cp.makeTenant(admin, 'bench');
const events = [];
for (let r = 0; r < 30; r++) {
  for (const p of [1000, 150_000, 300_000]) {
    events.push(usageEvent({ ts: new Date(Date.now() - (r % 28) * 86400e3).toISOString(), tenant_id: tenant.id,
      key_id: null, model: `bench-${r}`, provider: providers[r % providers.length].id, prompt_tokens: p,
      cached_tokens: p / 10, cache_write_tokens: p / 20, completion_tokens: 500, reasoning_tokens: 100, cost_usd: 0.01 }));
  }
}
await cp.postUsage(events);
await time('GET /api/v1/usage/recommendations (30 models)', () =>
  api('GET', `/api/v1/usage/recommendations?tenant_id=${tenant.id}`));

const explain = (label, q) => {
  const out = cp.sql(`EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) ${q}`);
  const lines = out.split('\n');
  console.log(`\n-- ${label}\n${process.env.BENCH_PLANS ? out : lines.filter((l) => /Execution Time|Planning Time/.test(l)).join('\n')}`);
};
explain('every route target\'s price (SELECT * FROM route_target_prices)', 'SELECT * FROM route_target_prices');
explain('one route\'s targets (route_target_prices WHERE route_id = ...)',
  `SELECT * FROM route_target_prices WHERE route_id = '${one}'`);
explain('each route target\'s price_source, one lookup per target (as the routes API does)',
  `SELECT (SELECT x.price_source = 'none' FROM route_target_prices x WHERE x.route_id = t.route_id
     AND x.position = t.position) FROM route_targets t`);
explain('every route target\'s info (SELECT * FROM route_target_info)', 'SELECT * FROM route_target_info');
explain('the snapshot\'s prices (snapshot_prices over every provider and route)',
  'SELECT snapshot_prices(ARRAY(SELECT id FROM providers), ARRAY(SELECT id FROM routes))');
if (process.env.BENCH_KEEP) { console.log(cp.dbUrl); await new Promise((r) => setTimeout(r, 1e9)); }
await cp.stop();
