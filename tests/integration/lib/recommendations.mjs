// recommendations.mjs: the fixture of the recommendations suites (recommendations_cost.test.mjs,
// recommendations_bands.test.mjs), set up in a control plane (control.mjs): its catalog the
// built-in one plus two Anthropic models at this fixture's own prices (imported with
// `tollgate-control catalog import`); providers "house" (OpenAI kind, the model the tenant
// used), "anth" and "anth2" (the two catalog models); routes whose targets are those three; a
// tenant. Both suites work their expected costs out by hand from the prices here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN } from './harness.mjs';
import { usageEvent } from './control.mjs';

const caps = { tools: true, parallel_tool_calls: true, vision: true, json_schema: true, reasoning: true, streaming_usage: true };
const entry = (o) => ({ kind: 'anthropic', mode: 'chat', context_window: 200000, max_output_tokens: 8192,
  capabilities: caps, deprecation_date: null, read_on: '2026-12-07',
  source: 'https://platform.claude.com/docs/en/about-claude/pricing', ...o });

// USD per million tokens; "<prefix>-tiered" costs more for a prompt of more than 1,000 input
// tokens, "<prefix>-flat" has no reasoning price (reasoning is output).
function models(prefix) {
  return [
    entry({ model: `${prefix}-tiered`,
      prices: { input: '2', cached_input: '0.20', cache_write: { '5m': '2.50', '1h': '4' }, output: '10', reasoning: '20' },
      long_context: [{ from_input_tokens: 1000, input: '4', cached_input: '0.40', cache_write: { '5m': '5', '1h': '8' },
        output: '15', reasoning: '30' }] }),
    entry({ model: `${prefix}-flat`, prices: { input: '3', cached_input: '0.30', cache_write: { '5m': '3.75', '1h': '6' }, output: '12' } }),
  ];
}

// cp: the control plane (the suite's: it stops it). prefix: the models' names ("<prefix>-tiered",
// "<prefix>-flat") and the temporary directory's; version: what the imported catalog's version
// ends with; aliases: the routes, each to house's "house-model", then tiered, then flat; tenant:
// its slug. Returns {admin, tenant, event(alias, o)}: event is a usage event of the tenant (no
// key) for the alias, served by house's model, with `o` on top (control.mjs's usageEvent).
export async function setupRecommendations(cp, { prefix, version, aliases, tenant: slug }) {
  const builtin = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
  const catalog = structuredClone(builtin);
  catalog.version = `${builtin.version}-${version}`;
  catalog.models.push(...models(prefix));
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), `${prefix}-`)), 'catalog.json');
  writeFileSync(file, JSON.stringify(catalog));
  const r = spawnSync(path.join(BIN, 'tollgate-control'), ['catalog', 'import', file], {
    env: { ...process.env, TOLLGATE_DATABASE_URL: cp.dbUrl,
      TOLLGATE_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' },
    encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  const admin = await cp.login();
  const prov = async (name, kind) => {
    const p = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
      name, kind, base_url: 'http://127.0.0.1:9', credentials: { api_key: 'sk-unused' } } });
    assert.equal(p.status, 201, p.text);
    return p.body.id;
  };
  const house = await prov('house', 'openai');
  const anth = await prov('anth', 'anthropic');
  const anth2 = await prov('anth2', 'anthropic');
  for (const alias of aliases) {
    const rt = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias, targets: [
      { provider_id: house, model: 'house-model' }, { provider_id: anth, model: `${prefix}-tiered` },
      { provider_id: anth2, model: `${prefix}-flat` }] } });
    assert.equal(rt.status, 201, rt.text);
  }
  const tenant = await cp.makeTenant(admin, slug);
  const event = (alias, o) => usageEvent({ ts: new Date().toISOString(), tenant_id: tenant.id, key_id: null, model: alias,
    provider: house, upstream_model: 'house-model', ...o });
  return { admin, tenant, event };
}
