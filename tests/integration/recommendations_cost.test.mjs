// recommendations_cost.test.mjs: GET /api/v1/usage/recommendations prices what a tenant's token
// volumes would have cost on a route's other targets the way a request's real cost is
// (docs/catalog.md, "Exact cost"): cache reads, 5-minute and 1-hour cache writes and reasoning at
// their own rates, and each request at the long-context tier its own prompt passes, so that a
// target whose rates rise above 1,000 input tokens is the cheaper alternative for requests at the
// threshold and the dearer one for requests above it. The expected numbers are worked by hand
// below from the catalog entries of lib/recommendations.mjs (imported with the built-in file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';
import { setupRecommendations } from './lib/recommendations.mjs';

// USD per million tokens (lib/recommendations.mjs): "tiered" costs more for a prompt of more than
// 1,000 input tokens; "flat" has no reasoning price: reasoning is output
//   tg-rec-tiered: input 2, cached 0.20, cache writes 2.50 (5m) and 4 (1h), output 10, reasoning 20;
//                  above 1,000 input tokens: 4, 0.40, 5 and 8, 15, 30
//   tg-rec-flat:   input 3, cached 0.30, cache writes 3.75 (5m) and 6 (1h), output 12
let cp;
let admin;
let tenant;
let ev;

before(async () => {
  cp = await startControl();
  ({ admin, tenant, event: ev } = await setupRecommendations(cp, { prefix: 'tg-rec', version: 'recommendations-test',
    aliases: ['rec-at', 'rec-above'], tenant: 'rec' }));
});

after(async () => {
  await cp?.stop();
});

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
