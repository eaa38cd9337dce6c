// synced.mjs: a data plane that takes its snapshot from a real control plane (control.mjs) and
// ships its usage there, set up through the admin API as an operator would, and the usage events
// read back through GET /api/v1/requests, for the suites that compare what the same request
// costs streamed and not (chat_via_responses.test.mjs, responses_usage.test.mjs).
import assert from 'node:assert/strict';
import { startGateway, waitFor } from './harness.mjs';

// The price every alias's model gets, USD per million tokens.
export const PRICE = { input_per_mtok: 1.5, cached_input_per_mtok: 0.5, output_per_mtok: 6 };

// providers: name -> the body of POST /api/v1/providers without the name; aliases: alias ->
// [provider name, the provider's model, ...] (the model priced at PRICE, the alias routed to it
// with no retry); keyName: the tenant's key for every alias. Starts a data plane of one worker
// syncing from cp. Returns {made (provider name -> the API's answer), ids (name -> id), key, gw}.
export async function syncedDataPlane(cp, admin, tenant, { providers, aliases, keyName }) {
  const made = {};
  const ids = {};
  for (const [name, body] of Object.entries(providers)) {
    const r = await cp.api('POST', '/api/v1/providers', { token: admin, body: { name, ...body } });
    assert.equal(r.status, 201, r.text);
    made[name] = r.body;
    ids[name] = r.body.id;
  }
  for (const [alias, [prov, model]] of Object.entries(aliases)) {
    const pr = await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: ids[prov], model, ...PRICE } });
    assert.equal(pr.status, 201, pr.text);
    const r = await cp.api('POST', '/api/v1/routes', { token: admin, body: {
      alias, targets: [{ provider_id: ids[prov], model }], retry: { max_attempts: 1 } } });
    assert.equal(r.status, 201, r.text);
  }
  const k = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin,
    body: { name: keyName, models: Object.keys(aliases) } });
  assert.equal(k.status, 201, k.text);
  const gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'test-dp-token' }, workers: 1 });
  return { made, ids, key: k.body, gw };
}

// The key's usage events as the control plane lists them (the newest 200), once `pick` returns
// something for them (what it returns), within 15 s.
export async function keyEvents(cp, admin, tenant, key, pick) {
  return waitFor(async () => {
    const r = await cp.api('GET', `/api/v1/requests?tenant_id=${tenant.id}&key_id=${key.id}&limit=200`, { token: admin });
    assert.equal(r.status, 200, r.text);
    return pick(r.body.data);
  }, 15000, 'the usage events to reach the control plane');
}

// The streamed event and the other of evs: {s, j}; there must be both.
export function streamedAndNot(evs, what) {
  const s = evs.find((e) => e.streamed);
  const j = evs.find((e) => !e.streamed);
  assert.ok(s && j, `${what}: one streamed and one not: ${JSON.stringify(evs)}`);
  return { s, j };
}

// The streamed event s recorded the same tokens and cost as the whole one j.
export function assertSameUsage(s, j, what) {
  for (const f of ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd']) {
    assert.equal(String(s[f]), String(j[f]), `${what}: ${f} streamed ${s[f]}, not ${j[f]}`);
  }
}
