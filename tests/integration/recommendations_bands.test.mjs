// recommendations_bands.test.mjs: the daily band rollup (migrations/0013_catalog_rows_usage_bands.sql)
// keeps only the requests whose prompt is above a long-context threshold; band 0, most requests,
// is read as usage_daily_nokey's volumes less the other bands', so that ingesting an event below
// every threshold writes no band row. One alias with requests on both sides of a 1,000-token
// threshold must still be priced band by band: the sum of what recommendations_cost.test.mjs
// works out by hand for the same requests under two aliases.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';
import { setupRecommendations } from './lib/recommendations.mjs';

// the prices of recommendations_cost.test.mjs (lib/recommendations.mjs), under this test's own
// names: tg-band-tiered and tg-band-flat
let cp;
let admin;
let tenant;
let ev;

before(async () => {
  cp = await startControl();
  let event;
  ({ admin, tenant, event } = await setupRecommendations(cp, { prefix: 'tg-band', version: 'bands-test',
    aliases: ['band-mixed'], tenant: 'bands' }));
  ev = (o) => event('band-mixed', o);
});

after(async () => {
  await cp?.stop();
});

test('requests below every threshold write no band row, and one model\'s bands on both sides are each priced at their tier', async () => {
  await cp.postUsage([
    ev({ prompt_tokens: 1000, cached_tokens: 200, cache_write_tokens: 100, cache_write_1h_tokens: 50,
      completion_tokens: 400, reasoning_tokens: 100, cost_usd: 0.5 }),
    ev({ prompt_tokens: 10, completion_tokens: 1, cost_usd: 0 }),
  ]);
  // two events below the lowest threshold: counted, but no band row of their own
  const tid = tenant.id;
  await waitFor(async () => cp.sql(`SELECT requests FROM usage_daily_nokey WHERE tenant_id = '${tid}'`) === '2',
    10000, 'the rollup holds the events');
  assert.equal(cp.sql(`SELECT count(*) FROM usage_daily_bands WHERE tenant_id = '${tid}'`), '0');
  await cp.postUsage([
    ev({ prompt_tokens: 1001, cached_tokens: 1, completion_tokens: 10, cost_usd: 0.25 }),
    ev({ prompt_tokens: 5000, cached_tokens: 1000, cache_write_tokens: 500, cache_write_1h_tokens: 500,
      completion_tokens: 1000, reasoning_tokens: 600, cost_usd: 0.25 }),
  ]);
  let r;
  await waitFor(async () => {
    r = await cp.api('GET', `/api/v1/usage/recommendations?tenant_id=${tid}`, { token: admin });
    return r.status === 200 && r.body.models[0]?.requests === 4;
  }, 10000, 'the rollups hold the events');
  assert.equal(cp.sql(`SELECT string_agg(above || '|' || requests || '|' || prompt_tokens, ';') FROM usage_daily_bands
    WHERE tenant_id = '${tid}'`), '1000|2|6001', 'only the requests above the threshold have band rows');
  const m = r.body.models[0];
  assert.deepEqual([m.requests, m.prompt_tokens, m.cached_tokens, m.cache_write_tokens, m.cache_write_1h_tokens,
    m.completion_tokens, m.reasoning_tokens, m.cost_usd], [4, 7011, 1201, 600, 550, 1411, 700, 1]);
  // per million, as worked out in recommendations_cost.test.mjs, plus the 10-token request
  // (tiered 10 * 2 + 1 * 10 = 30; flat 10 * 3 + 1 * 12 = 42):
  // tiered 6790 + 30 + 4150.4 + 42900 = 53870.4;  flat 7485 + 42 + 3120.3 + 26175 = 36822.3
  const cost = Object.fromEntries(m.alternatives.map((a) => [a.model, a.cost_usd]));
  assert.deepEqual(cost, { 'tg-band-tiered': 0.0538704, 'tg-band-flat': 0.0368223 });
});
