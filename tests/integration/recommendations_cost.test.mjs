// recommendations_cost.test.mjs: GET /api/v1/usage/recommendations prices what a tenant's token
// volumes would have cost on a route's other targets the way a request's real cost is
// (docs/catalog.md, "Exact cost"): cache reads, 5-minute and 1-hour cache writes and reasoning at
// their own rates, and each request at the long-context tier its own prompt passes, so that a
// target whose rates rise above 1,000 input tokens is the cheaper alternative for requests at the
// threshold and the dearer one for requests above it. The expected numbers are worked by hand
// below from this test's own catalog entries (imported with the built-in file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, waitFor } from './lib/harness.mjs';
import { startControl, usageEvent } from './lib/control.mjs';

const builtin = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
const caps = { tools: true, parallel_tool_calls: true, vision: true, json_schema: true, reasoning: true, streaming_usage: true };
const entry = (o) => ({ kind: 'anthropic', mode: 'chat', context_window: 200000, max_output_tokens: 8192,
  capabilities: caps, deprecation_date: null, read_on: '2026-12-07',
  source: 'https://platform.claude.com/docs/en/about-claude/pricing', ...o });
// USD per million tokens; "tiered" costs more for a prompt of more than 1,000 input tokens
const FIXTURE = [
  entry({ model: 'tg-rec-tiered',
    prices: { input: '2', cached_input: '0.20', cache_write: { '5m': '2.50', '1h': '4' }, output: '10', reasoning: '20' },
    long_context: [{ from_input_tokens: 1000, input: '4', cached_input: '0.40', cache_write: { '5m': '5', '1h': '8' },
      output: '15', reasoning: '30' }] }),
  // no reasoning price: reasoning is output
  entry({ model: 'tg-rec-flat', prices: { input: '3', cached_input: '0.30', cache_write: { '5m': '3.75', '1h': '6' }, output: '12' } }),
];

let cp;
let admin;
let tenant;
let house;

before(async () => {
  cp = await startControl();
  const catalog = structuredClone(builtin);
  catalog.version = `${builtin.version}-recommendations-test`;
  catalog.models.push(...FIXTURE);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tg-rec-')), 'catalog.json');
  writeFileSync(file, JSON.stringify(catalog));
  const r = spawnSync(path.join(BIN, 'tollgate-control'), ['catalog', 'import', file], {
    env: { ...process.env, TOLLGATE_DATABASE_URL: cp.dbUrl,
      TOLLGATE_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' },
    encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  admin = await cp.login();
  const prov = async (name, kind) => {
    const p = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
      name, kind, base_url: 'http://127.0.0.1:9', credentials: { api_key: 'sk-unused' } } });
    assert.equal(p.status, 201, p.text);
    return p.body.id;
  };
  house = await prov('house', 'openai');
  const anth = await prov('anth', 'anthropic');
  const anth2 = await prov('anth2', 'anthropic');
  for (const alias of ['rec-at', 'rec-above']) {
    const rt = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias, targets: [
      { provider_id: house, model: 'house-model' }, { provider_id: anth, model: 'tg-rec-tiered' },
      { provider_id: anth2, model: 'tg-rec-flat' }] } });
    assert.equal(rt.status, 201, rt.text);
  }
  tenant = await cp.makeTenant(admin, 'rec');
});

after(async () => {
  await cp?.stop();
});

const ev = (model, o) => usageEvent({ ts: new Date().toISOString(), tenant_id: tenant.id, key_id: null, model,
  provider: house, upstream_model: 'house-model', ...o });

test('recommendations price cache writes, reasoning and each request\'s long-context tier as real cost does', async () => {
  await cp.postUsage([
    // exactly 1,000 input tokens: not more than the threshold, base rates
    ev('rec-at', { prompt_tokens: 1000, cached_tokens: 200, cache_write_tokens: 100, cache_write_1h_tokens: 50,
      completion_tokens: 400, reasoning_tokens: 100, cost_usd: 0.5 }),
    // 1,001 and 5,000: the tier's rates for all their tokens
    ev('rec-above', { prompt_tokens: 1001, cached_tokens: 1, completion_tokens: 10, cost_usd: 0.25 }),
    ev('rec-above', { prompt_tokens: 5000, cached_tokens: 1000, cache_write_tokens: 500, cache_write_1h_tokens: 500,
      completion_tokens: 1000, reasoning_tokens: 600, cost_usd: 0.25 }),
  ]);
  let r;
  const row = (alias) => r.body.models.find((m) => m.model === alias);
  await waitFor(async () => {
    r = await cp.api('GET', `/api/v1/usage/recommendations?tenant_id=${tenant.id}`, { token: admin });
    return r.status === 200 && row('rec-at') && row('rec-above')?.requests === 2;
  }, 10000, 'the rollups hold the events');
  const at = row('rec-at');
  assert.deepEqual([at.prompt_tokens, at.cached_tokens, at.cache_write_tokens, at.cache_write_1h_tokens,
    at.completion_tokens, at.reasoning_tokens], [1000, 200, 100, 50, 400, 100]);
  const cost = (m) => Object.fromEntries(m.alternatives.map((a) => [a.model, a.cost_usd]));
  // at 1,000 tokens (base rates), per million:
  // tiered: 650 uncached * 2 + 200 cached * 0.20 + 100 5m-writes * 2.50 + 50 1h-writes * 4
  //         + 300 output * 10 + 100 reasoning * 20 = 1300 + 40 + 250 + 200 + 3000 + 2000 = 6790
  // flat:   650 * 3 + 200 * 0.30 + 100 * 3.75 + 50 * 6 + 300 * 12 + 100 * 12 (reasoning as output)
  //         = 1950 + 60 + 375 + 300 + 3600 + 1200 = 7485
  assert.deepEqual(cost(at), { 'tg-rec-tiered': 0.00679, 'tg-rec-flat': 0.007485 });
  assert.deepEqual(at.alternatives.map((a) => a.model), ['tg-rec-tiered', 'tg-rec-flat'], 'cheapest first');
  assert.deepEqual(at.alternatives.map((a) => a.savings_usd), [0.5 - 0.00679, 0.5 - 0.007485].map((x) => Number(x.toFixed(12))));
  // above 1,000 tokens (the tier's rates on tiered):
  // 1,001: tiered 1000 * 4 + 1 * 0.40 + 10 * 15 = 4150.4;   flat 1000 * 3 + 1 * 0.30 + 10 * 12 = 3120.3
  // 5,000: tiered 3000 * 4 + 1000 * 0.40 + 500 * 5 + 500 * 8 + 400 * 15 + 600 * 30
  //               = 12000 + 400 + 2500 + 4000 + 6000 + 18000 = 42900
  //        flat   3000 * 3 + 1000 * 0.30 + 500 * 3.75 + 500 * 6 + 400 * 12 + 600 * 12
  //               = 9000 + 300 + 1875 + 3000 + 4800 + 7200 = 26175
  const above = row('rec-above');
  assert.deepEqual(cost(above), { 'tg-rec-tiered': 0.0470504, 'tg-rec-flat': 0.0292953 });
  assert.deepEqual(above.alternatives.map((a) => a.model), ['tg-rec-flat', 'tg-rec-tiered'], 'the order flips');
  assert.ok(above.alternatives.every((a) => a.source === 'route'), 'an unknown current model has no catalog peers');
});
