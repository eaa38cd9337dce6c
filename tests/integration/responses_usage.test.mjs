// responses_usage.test.mjs: /v1/responses usage and cost, end to end through the control plane:
// providers of every kind made through the admin API (an OpenAI-compatible one with
// settings.responses_api "chat"), a data plane that takes its snapshot from the control plane
// and ships its usage there, and the usage events read back through GET /api/v1/requests. The
// same request streamed and not costs the same on every provider, and is recorded with the
// endpoint "responses". docs/responses.md, docs/usage.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startKindMocks, closeKindMocks } from './lib/kinds.mjs';
import { waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';
import { syncedDataPlane, keyEvents, streamedAndNot, assertSameUsage } from './lib/synced.mjs';

const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };
const mocks = {};
let cp;
let gw;
let admin;
let tenant;
let key;
let oai;
let ids;

// alias -> [provider name, its model, the directives that make its mock report cached and
// reasoning tokens where its wire format has them]
const ALIASES = {
  gpt: ['openai', 'gpt-4o-mini', 'mock:cached=3 mock:reasoning=2'],
  azure: ['azure', 'gpt-4o-mini', 'mock:cached=3 mock:reasoning=2'],
  compat: ['compat', 'llama-3.1-8b', 'mock:cached=3 mock:reasoning=2'],
  claude: ['anthropic', 'claude-3-5-haiku-20241022', 'mock:cache_read=3'],
  gemini: ['gemini', 'gemini-2.0-flash', ''],
  bedrock: ['bedrock', 'anthropic.claude-3-5-haiku-20241022-v1:0', 'mock:cached=3'],
};

before(async () => {
  Object.assign(mocks, await startKindMocks());
  cp = await startControl({ env: CP_ENV });
  admin = await cp.login();
  tenant = await cp.makeTenant(admin, 'acme');
  const b = mocks.bedrock;
  const providers = {
    openai: { kind: 'openai', base_url: mocks.openai.url, credentials: { api_key: 'sk-upstream-test' } },
    compat: { kind: 'openai', base_url: mocks.compat.url, credentials: { api_key: 'sk-upstream-test' },
      settings: { responses_api: 'chat' } },
    azure: { kind: 'azure', base_url: mocks.azure.url, credentials: { api_key: mocks.azure.apiKey } },
    anthropic: { kind: 'anthropic', base_url: mocks.anthropic.url, credentials: { api_key: 'sk-ant-test' } },
    gemini: { kind: 'gemini', base_url: mocks.gemini.url, credentials: { api_key: 'gm-test' } },
    bedrock: { kind: 'bedrock', base_url: b.url, settings: { region: b.region },
      credentials: { aws_access_key_id: b.accessKeyId, aws_secret_access_key: b.secretAccessKey } },
  };
  ({ ids, key, gw } = await syncedDataPlane(cp, admin, tenant, { providers, aliases: ALIASES, keyName: 'responses' }));
  oai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
  await waitFor(async () => {
    try { await oai.responses.create({ model: 'gpt', input: 'ready' }); return true; } catch { return false; }
  }, 10000, 'the data plane to take the snapshot');
});

after(async () => {
  await gw?.stop();
  await cp?.stop();
  await closeKindMocks(mocks);
});

test('settings.responses_api is "native" or "chat"; anything else is a 422 naming it', async () => {
  const r = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
    name: 'odd', kind: 'openai', base_url: mocks.compat.url, settings: { responses_api: 'both' } } });
  assert.equal(r.status, 422, r.text);
  assert.match(r.text, /settings\.responses_api/);
});

test('the same request streamed and not is recorded once each, endpoint responses, with equal usage and cost', async () => {
  const started = Date.now();
  for (const [alias, [, , directives]] of Object.entries(ALIASES)) {
    const input = `say hi mock:words=5 ${directives}`;
    const r = await oai.responses.create({ model: alias, instructions: 'be brief', input });
    assert.equal(r.output_text, 'w1 w2 w3 w4 w5', alias);
    const f = await oai.responses.stream({ model: alias, instructions: 'be brief', input }).finalResponse();
    assert.equal(f.output_text, r.output_text, alias);
    assert.deepEqual(f.usage, r.usage, `${alias}: the client sees the same usage`);
  }
  // the chat-only provider got chat completions: the setting made it through the snapshot
  assert.ok(mocks.compat.requests.length > 0);
  for (const q of mocks.compat.requests) assert.match(q.path, /\/chat\/completions$/);
  assert.ok(mocks.openai.requests.some((q) => /\/responses$/.test(q.path)));
  const n = Object.keys(ALIASES).length * 2;
  const rows = await keyEvents(cp, admin, tenant, key, (data) => {
    const mine = data.filter((e) => Date.parse(e.ts) >= started - 1000 && e.request_id);
    return mine.filter((e) => e.model in ALIASES && e.status === 200).length >= n + 1 ? mine : null;
  });
  for (const alias of Object.keys(ALIASES)) {
    const evs = rows.filter((e) => e.model === alias && e.status === 200).slice(0, 2);
    const { s, j } = streamedAndNot(evs, alias);
    for (const e of [s, j]) {
      assert.equal(e.endpoint, 'responses', alias);
      assert.equal(e.provider, ids[ALIASES[alias][0]], alias);
      assert.ok(e.prompt_tokens > 0 && e.completion_tokens > 0, `${alias}: ${JSON.stringify(e)}`);
      assert.ok(Number(e.cost_usd) > 0, `${alias}: priced: ${JSON.stringify(e)}`);
    }
    assertSameUsage(s, j, alias);
    if (ALIASES[alias][2].includes('cache')) assert.equal(s.cached_tokens, 3, `${alias}: cached tokens recorded`);
    if (ALIASES[alias][2].includes('reasoning')) assert.equal(s.reasoning_tokens, 2, `${alias}: reasoning tokens recorded`);
  }
});
