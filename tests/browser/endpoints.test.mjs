// endpoints.test.mjs: a Responses turn in the dashboard, in a real browser over traffic sent
// through a real data plane (the OpenAI mock serves /v1/responses natively): its row in the
// request log with the tokens the client was told and their cost, the request log filtered by
// endpoint, and the usage explorer's split by endpoint with the period's requests, tokens and
// spend per endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, makeWorld, signedInPage, stopAll, settle, go, checkView, chat, waitFor, usage,
} from './lib/browser.mjs';

let stack;
let browser;
let page;
let acme;
let key;
let turn; // the Responses turn's usage as the client saw it
let chats = 0; // the chat completions the control plane recorded (the API's count, once settled)

const PRICE = { input_per_mtok: 0.15, output_per_mtok: 0.6 }; // makeWorld's
const money6 = (usd) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 }).format(usd);
const num = (n) => new Intl.NumberFormat('en-US').format(n);

async function respond(input) {
  const res = await fetch(`${stack.dp.url}/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', input, store: false }),
  });
  return { status: res.status, body: await res.json() };
}

before(async () => {
  stack = await startStack();
  await makeWorld(stack);
  acme = await stack.cp.makeTenant(stack.admin, 'acme-endpoints');
  const k = await stack.cp.api('POST', `/api/v1/tenants/${acme.id}/keys`, { token: stack.admin, body: { name: 'agent-key', models: ['gpt-4o-mini'] } });
  assert.equal(k.status, 201, k.text);
  key = k.body;
  let answered = 0; // chat completions answered 200 (a warm-up refused before routing may or may not be recorded)
  await waitFor(async () => {
    const { status } = await chat(stack, key.key, 'warm-up');
    if (status === 200) answered++;
    return status === 200;
  }, 15000, 'the key to reach the data plane');
  const second = await chat(stack, key.key, 'a second chat turn');
  assert.equal(second.status, 200);
  answered++;
  const r = await respond('Say hello to the dashboard, please, in a few words');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.object, 'response');
  turn = r.body.usage;
  assert.ok(turn.input_tokens > 0 && turn.output_tokens > 0, JSON.stringify(turn));
  // settled: the responses turn and every answered chat are in (the usage report by endpoint)
  const byEndpoint = async () => (await usage(stack, { tenant_id: acme.id, bucket: 'total', group_by: 'endpoint' })).series;
  await waitFor(async () => {
    const series = await byEndpoint();
    const n = (e) => series.find((p) => p.group === e)?.requests ?? 0;
    return n('responses') === 1 && n('chat.completions') >= answered;
  }, 30000, 'usage at the control plane');
  chats = (await byEndpoint()).find((p) => p.group === 'chat.completions').requests;
  assert.equal((await usage(stack, { tenant_id: acme.id })).totals.requests, chats + 1);
  ({ browser, page } = await signedInPage(stack));
});

after(() => stopAll(browser, stack));

// The request log's rows as {endpoint, tokens, cost}, by the table's own headers.
async function logRows() {
  return page.locator('#requests-list table').evaluate((t) => {
    const heads = [...t.tHead.rows[0].cells].map((c) => c.textContent.trim());
    const at = (name) => heads.indexOf(name);
    return [...t.tBodies[0].rows].map((tr) => ({
      endpoint: tr.cells[at('Endpoint')].textContent.trim(),
      tokens: tr.cells[at('Tokens in / out')].textContent.trim(),
      cost: tr.cells[at('Cost')].textContent.trim(),
      status: tr.cells[at('Status')].textContent.trim(),
    }));
  });
}

test('the request log shows the Responses turn with its tokens and cost, and filters by endpoint', async () => {
  // the turn's cost, as priced: its tokens at makeWorld's price
  const cost = (turn.input_tokens * PRICE.input_per_mtok + turn.output_tokens * PRICE.output_per_mtok) / 1e6;
  await go(page, `#/?tenant_id=${acme.id}`);
  await page.getByRole('link', { name: 'Requests', exact: true }).first().click();
  await settle(page);
  let rows = await logRows();
  assert.equal(rows.length, chats + 1);
  const mine = rows.filter((r) => r.endpoint === 'responses');
  assert.deepEqual(mine, [{ endpoint: 'responses', tokens: `${num(turn.input_tokens)} / ${num(turn.output_tokens)}`, cost: money6(cost), status: '200' }]);
  assert.equal(rows.filter((r) => r.endpoint === 'chat.completions').length, chats);

  const form = page.locator('form.filters');
  await form.getByLabel('Endpoint').selectOption('responses');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await settle(page);
  assert.match(page.url(), /endpoint=responses/);
  assert.ok(page.apiCalls.some((c) => /^GET \/api\/v1\/requests\?.*endpoint=responses/.test(c)), page.apiCalls.join('\n'));
  rows = await logRows();
  assert.deepEqual(rows, mine);

  await form.getByLabel('Endpoint').selectOption('chat.completions');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await settle(page);
  rows = await logRows();
  assert.equal(rows.length, chats);
  assert.ok(rows.every((r) => r.endpoint === 'chat.completions'));
  await checkView(page, 'the request log filtered by endpoint');
});

test('the usage explorer shows requests, tokens and spend per endpoint, and splits by endpoint', async () => {
  await go(page, `#/?tenant_id=${acme.id}`);
  await page.getByRole('link', { name: 'Usage', exact: true }).first().click();
  await settle(page);
  const section = page.getByRole('region', { name: 'By endpoint', exact: true });
  await section.waitFor();
  // on demand: the view itself does not sum the period's events
  assert.ok(!page.apiCalls.some((c) => /group_by=endpoint/.test(c)), page.apiCalls.join('\n'));
  await section.getByRole('button', { name: 'Show the numbers per endpoint' }).click();
  await section.locator('table').waitFor();
  const q = new URLSearchParams(page.url().split('?')[1] || '');
  const from = q.get('from'), to = q.get('to');
  const byEndpoint = await usage(stack, { tenant_id: acme.id, bucket: 'total', group_by: 'endpoint', ...(from ? { from, to } : { from: new Date(Date.now() - 86400e3).toISOString() }) });
  const got = await section.locator('table').evaluate((t) => [...t.tBodies[0].rows].map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
  const want = byEndpoint.series.map((p) => [p.group, num(p.requests), num(p.errors), num(p.prompt_tokens), num(p.completion_tokens), num(p.cached_tokens), money6(p.cost_usd)]);
  assert.deepEqual(got, want);
  // the API's numbers are the traffic's: one responses turn with the tokens the client was told
  const resp = byEndpoint.series.find((p) => p.group === 'responses');
  const chat = byEndpoint.series.find((p) => p.group === 'chat.completions');
  assert.deepEqual([resp.requests, resp.prompt_tokens, resp.completion_tokens], [1, turn.input_tokens, turn.output_tokens]);
  assert.equal(chat.requests, chats);
  assert.ok(resp.cost_usd > 0 && chat.cost_usd > 0);
  assert.equal(byEndpoint.series.length, 2);

  // an endpoint links to its requests in the request log
  await section.getByRole('link', { name: 'responses', exact: true }).click();
  await settle(page);
  assert.match(page.url(), /#\/requests\?.*endpoint=responses/);
  assert.deepEqual((await logRows()).map((r) => r.endpoint), ['responses']);

  // split by endpoint: the table's rows per endpoint
  await page.goBack();
  await settle(page);
  const form = page.locator('form.filters');
  await form.getByLabel('Split by').selectOption('endpoint');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await settle(page);
  assert.match(page.url(), /group_by=endpoint/);
  const table = page.getByRole('region', { name: 'Usage per bucket' });
  const text = await table.innerText();
  assert.match(text, /\bEndpoint\b/);
  assert.match(text, /\bresponses\b/);
  assert.match(text, /chat\.completions/);
  await checkView(page, 'the usage explorer by endpoint');
});
