// reports.test.mjs: the overview and the usage explorer in a real browser, over traffic sent
// through a real data plane: spend today and this month against the tenant's budgets, the
// charts per hour and per day, the data planes, the explorer's filters (in the URL), its
// split by model and its CSV; what a tenant member sees there; the tenant switcher.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  startStack, makeWorld, signedInPage, stopAll, newPage, signIn, settle, go, assertClean, checkView,
  chat, waitFor, usage, ADMIN,
} from './lib/browser.mjs';

let stack;
let browser;
let acme;
let beta;
let page;
let sent = 0;
let key;

before(async () => {
  stack = await startStack();
  await makeWorld(stack);
  acme = await stack.cp.makeTenant(stack.admin, 'acme');
  beta = await stack.cp.makeTenant(stack.admin, 'beta');
  const api = (m, p, body) => stack.cp.api(m, p, { token: stack.admin, body });
  for (const [period, limit] of [['daily', 10], ['monthly', 100]]) {
    const b = await api('POST', `/api/v1/tenants/${acme.id}/budgets`, { period, limit_usd: limit });
    assert.equal(b.status, 201, b.text);
  }
  const k = await api('POST', `/api/v1/tenants/${acme.id}/keys`, { name: 'reporting-key', models: ['gpt-4o-mini'] });
  assert.equal(k.status, 201, k.text);
  key = k.body;
  await waitFor(async () => {
    const { status } = await chat(stack, key.key, 'warm-up');
    if (status !== 401) sent++;
    return status === 200;
  }, 15000, 'the key to reach the data plane');
  for (let i = 0; i < 3; i++) { await chat(stack, key.key, `q${i}`); sent++; }
  await chat(stack, key.key, 'mock:status=404'); sent++;
  await waitFor(async () => (await usage(stack, { tenant_id: acme.id })).totals.requests === sent, 20000, 'usage at the control plane');
  ({ browser, page } = await signedInPage(stack));
});

after(() => stopAll(browser, stack));

test('overview: spend today and this month against the budgets, requests, error rate, latency', async () => {
  await go(page, `#/?tenant_id=${acme.id}`);
  const day = new Date(); day.setUTCHours(0, 0, 0, 0);
  const today = await usage(stack, { tenant_id: acme.id, from: day.toISOString(), bucket: 'day' });
  assert.equal(today.totals.requests, sent);
  assert.ok(today.totals.cost_usd > 0, 'the traffic has a cost');
  const spendToday = await page.locator('#stat-spend-today').innerText();
  assert.match(spendToday, /of \$10\.00 budget/);
  assert.ok(spendToday.includes(`$${today.totals.cost_usd.toFixed(6).replace(/0+$/, '')}`), `${spendToday} shows ${today.totals.cost_usd}`);
  assert.match(await page.locator('#stat-spend-month').innerText(), /of \$100\.00 budget/);
  assert.match(await page.locator('#stat-requests').innerText(), new RegExp(`Requests today\\s+${sent}\\b`));
  const rate = ((1 / sent) * 100).toFixed(1);
  assert.match(await page.locator('#stat-errors').innerText(), new RegExp(`${rate.replace('.', '\\.')}%`));
  const meter = page.locator('#stat-spend-today [role=meter]');
  assert.equal(Number(await meter.getAttribute('aria-valuemax')), 10);
  // the meter is the budget's own spend (the spend table data planes enforce) when the API has it
  const budgets = (await stack.cp.api('GET', `/api/v1/tenants/${acme.id}/budgets`, { token: stack.admin })).body.data;
  const daily = budgets.find((b) => b.period === 'daily' && !b.key_id);
  if (daily.spent_usd !== undefined) {
    assert.equal(Number(daily.spent_usd), today.totals.cost_usd, 'the budget\'s spend is the day\'s usage');
    assert.equal(Number(await meter.getAttribute('aria-valuenow')), Number(daily.spent_usd));
  }
  const lat = page.locator('#stat-latency dd');
  if (today.totals.latency_p50_ms === undefined) {
    assert.match(await lat.innerText(), /^—/, 'no latency without latency_p50_ms in /api/v1/usage');
  } else {
    const ms = (v) => `${Math.round(v)} ms`;
    assert.equal(await lat.innerText(), `${ms(today.totals.latency_p50_ms)} / ${ms(today.totals.latency_p95_ms)}`);
  }
  await checkView(page, 'the overview');
});

test('overview: charts per hour and per day hold the traffic', async () => {
  await go(page, `#/overview?range=24h&tenant_id=${acme.id}`);
  const sumOf = async (id) => {
    await page.locator(`#${id} summary`).click();
    const cells = await page.locator(`#${id} table.chart-data tbody tr`).evaluateAll((trs) => trs.map((tr) => Number(tr.cells[1].textContent.replace(/[$,]/g, ''))));
    return cells.reduce((a, b) => a + b, 0);
  };
  assert.equal(await sumOf('chart-requests'), sent);
  assert.equal(await page.locator('#chart-requests canvas').count(), 1);
  await page.getByRole('link', { name: 'Last 7 days' }).click();
  await settle(page);
  assert.match(page.url(), /range=7d/);
  assert.equal(await sumOf('chart-requests'), sent);
  const rows = await page.locator('#chart-requests table.chart-data tbody th time').allInnerTexts();
  assert.ok(rows.every((t) => /^\d{4}-\d\d-\d\d$/.test(t)), `day buckets: ${rows}`);
  assert.match(await page.locator('.card', { hasText: 'Top models' }).innerText(), /gpt-4o-mini/);
  await checkView(page, 'the overview by day');
});

test('overview: a platform admin sees the data planes with snapshot version and last contact', async () => {
  const dps = (await stack.cp.api('GET', '/api/v1/dataplanes', { token: stack.admin })).body.data;
  assert.ok(dps.length >= 1);
  await go(page, '#/overview?scope=all');
  assert.match(await page.locator('h1').innerText(), /all tenants/);
  const section = page.getByRole('region', { name: 'Data planes', exact: true }).first();
  const text = await section.innerText();
  for (const d of dps) {
    assert.ok(text.includes(d.id), `data plane ${d.id} listed`);
    assert.ok(text.includes(String(d.snapshot_version)), 'its snapshot version');
  }
  assert.match(text, /live/);
  assert.equal(await section.locator('time').count(), dps.length, 'last contact per data plane');
});

test('usage explorer: filters live in the URL, split by model, CSV totals equal the API\'s', async () => {
  await go(page, `#/usage?tenant_id=${acme.id}`);
  const form = page.locator('form.filters');
  await form.getByLabel('Split by').selectOption('model');
  await form.getByLabel('Per').selectOption('hour');
  await form.getByRole('button', { name: 'Apply filters' }).click();
  await settle(page);
  assert.match(page.url(), /group_by=model/);
  assert.match(page.url(), /bucket=hour/);
  const table = page.getByRole('region', { name: 'Usage per bucket' });
  assert.match(await table.innerText(), /gpt-4o-mini/);
  assert.match(await page.locator('#usage-totals [data-field=requests]').innerText(), new RegExp(`^${sent}$`));

  // the same URL opened afresh shows the same report (bookmarkable)
  const url = page.url();
  await page.goto('about:blank');
  await page.goto(url);
  await settle(page);
  assert.equal(await page.locator('form.filters').getByLabel('Split by').inputValue(), 'model');

  const q = new URLSearchParams(url.split('?')[1]);
  const api = await usage(stack, { tenant_id: acme.id, from: q.get('from'), to: q.get('to'), bucket: 'hour', group_by: 'model' });
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#usage-csv').click()]);
  assert.match(download.suggestedFilename(), /^tollgate-usage-.*-by-model\.csv$/);
  const lines = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
  const cols = lines[0].split(',');
  const rows = lines.slice(1).map((l) => l.split(','));
  assert.equal(rows.length, api.series.length);
  for (const c of ['requests', 'errors', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens']) {
    assert.equal(rows.reduce((a, r) => a + Number(r[cols.indexOf(c)]), 0), api.totals[c], c);
  }
  const nano = (v) => BigInt(Math.round(Number(v) * 1e9));
  assert.equal(rows.reduce((a, r) => a + nano(r[cols.indexOf('cost_usd')]), 0n), nano(api.totals.cost_usd), 'cost_usd');
  await checkView(page, 'the usage explorer');
});

// RFC 4180 rows: quoted fields may hold commas, quotes ("") and line breaks.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let f = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { f += '"'; i++; } else if (c === '"') q = false; else f += c;
    } else if (c === '"') q = true;
    else if (c === ',') { row.push(f); f = ''; } else if (c === '\n') { row.push(f.replace(/\r$/, '')); rows.push(row); row = []; f = ''; } else f += c;
  }
  if (f || row.length) { row.push(f); rows.push(row); }
  return rows;
}

test('usage explorer: a key name with commas, quotes or a leading = stays one cell and is never a formula', async () => {
  const evil = '=HYPERLINK("http://x","a,b")';
  const k = await stack.cp.api('POST', `/api/v1/tenants/${acme.id}/keys`, { token: stack.admin, body: { name: evil, models: [] } });
  assert.equal(k.status, 201, k.text);
  const ev = (i) => JSON.stringify({ id: crypto.randomUUID(), ts: new Date(Date.now() - i * 1000).toISOString(), request_id: `csv-${i}`,
    tenant_id: acme.id, key_id: k.body.id, model: 'gpt-4o-mini', provider: null, upstream_model: null, endpoint: 'chat.completions',
    status: 200, streamed: false, cache_hit: false, latency_ms: 3, ttfb_ms: 1, prompt_tokens: 2, completion_tokens: 3,
    cached_tokens: 0, reasoning_tokens: 0, cost_usd: 0.25 });
  const r = await fetch(`${stack.base}/dp/v1/usage`, { method: 'POST', headers: { authorization: 'Bearer test-dp-token' }, body: `${ev(1)}\n${ev(2)}\n` });
  assert.equal(r.status, 200, await r.text());
  await go(page, `#/usage?tenant_id=${acme.id}&group_by=key`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#usage-csv').click()]);
  const rows = parseCsv(readFileSync(await download.path(), 'utf8'));
  const cols = rows[0];
  const mine = rows.filter((row) => row[cols.indexOf('group')] === k.body.id);
  assert.equal(mine.length, 1, 'one day, one row');
  assert.equal(mine[0].length, cols.length, 'the name stayed one cell');
  assert.equal(mine[0][cols.indexOf('group_name')], `'${evil}`, 'prefixed so a spreadsheet shows it as text');
  assert.equal(mine[0][cols.indexOf('requests')], '2');
  assert.equal(mine[0][cols.indexOf('cost_usd')], '0.5');
  assertClean(page, 'the CSV of an odd name');
});

test('usage explorer: a bad range is refused in words, and an empty period says so', async () => {
  await go(page, `#/usage?tenant_id=${acme.id}&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z`);
  assert.match(await page.locator('#usage-report').innerText(), /No requests in this period/);
  await go(page, `#/usage?tenant_id=${acme.id}&from=2020-01-01T00:00:00Z&to=2024-01-02T00:00:00Z`);
  assert.match(await page.getByRole('alert').innerText(), /400 days|days|range/i);
  const form = page.locator('form.filters');
  await form.getByLabel('To (UTC day, inclusive)').fill('2019-12-01');
  assert.match(await form.locator('.field-error').allInnerTexts().then((t) => t.join(' ')), /must not be before/);
  assertClean(page, 'bad ranges');
});

test('a member of two tenants switches between them in the header; a tenant user sees no data planes', async () => {
  const u = await stack.cp.makeUser('two@tenants.test', { tenantId: acme.id, role: 'member' });
  stack.cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${u.id}', '${beta.id}', 'viewer')`);
  const p = await newPage(browser, stack, { width: 390 });
  await signIn(p, 'two@tenants.test', ADMIN.password);
  const sw = p.getByLabel('Tenant');
  assert.deepEqual(await sw.locator('option').allInnerTexts(), ['acme', 'beta']);
  await go(p, `#/t/${acme.id}/keys`);
  assert.equal(await sw.inputValue(), acme.id);
  assert.equal(await p.locator('#create-key').count(), 1, 'a member creates keys in acme');
  // but may not change a key an admin made for someone else: no control for it is shown
  await go(p, `#/t/${acme.id}/keys/${key.id}`);
  for (const id of ['#rotate-key', '#revoke-key', '#delete-key', '#edit-key-form', '#key-budget-form']) {
    assert.equal(await p.locator(id).count(), 0, `${id} on another's key`);
  }
  await go(p, `#/t/${acme.id}/keys`);
  await sw.selectOption(beta.id);
  await settle(p);
  assert.match(p.url(), new RegExp(`#/t/${beta.id}/keys$`));
  assert.equal(await p.locator('#create-key').count(), 0, 'a viewer of beta does not');
  assert.match(await p.locator('#my-roles').innerText(), /member of acme/);
  await p.locator('#app-nav').getByRole('link', { name: 'Overview' }).click();
  await settle(p);
  assert.match(p.url(), new RegExp(`tenant_id=${beta.id}`));
  assert.match(await p.locator('h1').innerText(), /beta/);
  await p.reload();
  await settle(p);
  assert.match(await p.locator('h1').innerText(), /beta/, 'a reload keeps the tenant');
  assert.equal(await p.getByRole('region', { name: 'Data planes' }).count(), 0);
  await checkView(p, 'the overview of a tenant member at 390 px');
  await p.context().close();
});
