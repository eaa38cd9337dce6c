// keys.test.mjs: the virtual-key journey in a real browser, as a tenant admin does it: create a
// key (its secret shown once, copied), send traffic through a data plane with it, find that
// traffic on the overview, in the request log, on the key's own page and in the usage
// explorer's CSV (whose totals must equal the API's), then revoke the key. Plus what a viewer
// and a member may see, and the API's field errors shown next to the field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  startStack, makeWorld, signedInPage, stopAll, newPage, signIn, settle, go, assertClean, checkView,
  chat, waitFor, usage, ADMIN,
} from './lib/browser.mjs';

let stack;
let browser;
let tenant;
let admin;          // the page of the tenant's admin (a browser context of its own)
let adminUser;
const state = {};   // what one step leaves for the next: key id, secret, requests sent

before(async () => {
  stack = await startStack();
  await makeWorld(stack);
  tenant = await stack.cp.makeTenant(stack.admin, 'acme');
  adminUser = await stack.cp.makeUser('owner@acme.test', { tenantId: tenant.id, role: 'admin' });
  ({ browser, page: admin } = await signedInPage(stack, 'owner@acme.test', ADMIN.password));
});

after(() => stopAll(browser, stack));

// The endpoints a newer control plane adds (the request log); a test needing one is skipped
// with the reason when the server answers 404 for it.
async function hasEndpoint(path) {
  const r = await stack.cp.api('GET', path, { token: stack.admin });
  return r.status !== 404;
}

test('an empty key list says so and what to do', async () => {
  await go(admin, `#/t/${tenant.id}/keys`);
  assert.match(await admin.locator('#keys-list').innerText(), /No keys yet — create one/);
  await checkView(admin, 'the empty key list');
});

test('the create form validates as you type and shows the API\'s error next to its field', async () => {
  await go(admin, `#/t/${tenant.id}/keys`);
  await admin.locator('#create-key').click();
  const form = admin.locator('#create-key-form');
  const name = form.getByLabel('Name');
  await name.fill('x');
  await name.fill('');
  assert.match(await form.locator(`#${await name.getAttribute('id')}-err`).innerText(), /Name is required/);
  assert.equal(await name.getAttribute('aria-invalid'), 'true');
  await name.fill('ok-name');
  assert.equal(await form.locator(`#${await name.getAttribute('id')}-err`).innerText(), '');

  const rpm = form.getByLabel('Requests per minute');
  await rpm.fill('0');
  assert.match(await form.locator(`#${await rpm.getAttribute('id')}-err`).innerText(), /at least 1/);
  await rpm.fill('');

  // A control character is the server's to refuse (422 invalid_characters, field "name"): its
  // message appears under the name field, and nothing is created.
  await name.fill('bad\u0007name');
  await form.getByRole('button', { name: 'Create key' }).click();
  const err = form.locator(`#${await name.getAttribute('id')}-err`);
  await waitFor(async () => (await err.innerText()) !== '', 5000, 'the field error');
  assert.match(await err.innerText(), /control|character/i);
  const keys = await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/keys`, { token: stack.admin });
  assert.equal(keys.body.data.length, 0, 'nothing was created');
  assertClean(admin, 'the create form');
});

test('create a key: the secret is shown once, with a copy button and a warning', async () => {
  await go(admin, `#/t/${tenant.id}/keys`);
  await admin.locator('#create-key').click();
  const form = admin.locator('#create-key-form');
  await form.getByLabel('Name').fill('checkout-service');
  await form.getByLabel('gpt-4o-mini').check();
  await form.getByLabel('Requests per minute').fill('600');
  await form.getByRole('button', { name: 'Create key' }).click();

  const secretBox = admin.getByLabel('The new key');
  await secretBox.waitFor({ state: 'visible' });
  const secret = await secretBox.inputValue();
  assert.match(secret, /^tg-[A-Za-z0-9_-]{43}$/);
  assert.match(await admin.locator('.secret-once').innerText(), /shown only once/i);
  await admin.locator('.secret-once').getByRole('button', { name: 'Copy' }).click();
  await admin.locator('.copy-status').filter({ hasText: 'Copied' }).waitFor();
  assert.equal(await admin.evaluate(() => navigator.clipboard.readText()), secret);

  // the list has it, with the last four characters only
  const row = admin.locator('#keys-list tr', { hasText: 'checkout-service' });
  await row.waitFor();
  assert.match(await row.innerText(), new RegExp(`…${secret.slice(-4)}`));
  assert.match(await row.innerText(), /active/);
  const keys = await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/keys`, { token: stack.admin });
  const key = keys.body.data.find((k) => k.name === 'checkout-service');
  assert.deepEqual([key.models, key.rpm_limit], [['gpt-4o-mini'], 600]);
  state.key = key;
  state.secret = secret;

  // once: the key's page and a reload never show it again
  await row.getByRole('link', { name: 'checkout-service' }).click();
  await settle(admin);
  assert.match(admin.url(), new RegExp(`#/t/${tenant.id}/keys/${key.id}$`));
  const everything = await admin.evaluate(() => document.body.innerText + [...document.querySelectorAll('input')].map((i) => i.value).join(' '));
  assert.ok(!everything.includes(secret), 'the secret is not on the key page');
  await checkView(admin, 'the key page');
});

test('edit a key: allowed models, limits and expiry', async () => {
  await go(admin, `#/t/${tenant.id}/keys/${state.key.id}`);
  const form = admin.locator('#edit-key-form');
  await form.getByLabel('Tokens per minute').fill('50000');
  await form.getByLabel('Requests per minute').fill('');
  const exp = new Date(Date.now() + 30 * 86400000);
  const p = (n) => String(n).padStart(2, '0');
  await form.getByLabel('Expires').fill(`${exp.getFullYear()}-${p(exp.getMonth() + 1)}-${p(exp.getDate())}T12:00`);
  await form.getByRole('button', { name: 'Save changes' }).click();
  await admin.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  const k = (await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/keys/${state.key.id}`, { token: stack.admin })).body;
  assert.equal(k.tpm_limit, 50000);
  assert.equal(k.rpm_limit, null, 'an emptied limit is cleared');
  assert.ok(k.expires_at && Math.abs(new Date(k.expires_at) - new Date(`${exp.getFullYear()}-${p(exp.getMonth() + 1)}-${p(exp.getDate())}T12:00`)) < 60000);
  assert.match(await admin.locator('#key-details').innerText(), /50000/);

  // a budget for the key, from its page
  const bf = admin.locator('#key-budget-form');
  await bf.getByLabel('Limit (USD)').fill('25.5');
  await bf.getByRole('button', { name: 'Set budget' }).click();
  await admin.locator('td', { hasText: '$25.50' }).waitFor();
  const b = (await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/budgets?key_id=${state.key.id}`, { token: stack.admin })).body.data;
  assert.deepEqual(b.map((x) => [x.period, Number(x.limit_usd)]), [['monthly', 25.5]]);
  assertClean(admin, 'the edit form');
});

test('traffic through a data plane shows on the overview, the key page and the usage CSV', async () => {
  // the data plane learns of the key from the control plane within a few seconds; every answer
  // but 401 (key not known yet) is a request made with the key
  let sent = 0;
  await waitFor(async () => {
    const { status } = await chat(stack, state.secret, 'warm-up');
    if (status !== 401) sent++;
    return status === 200;
  }, 15000, 'the key to reach the data plane');
  for (let i = 0; i < 4; i++) { assert.equal((await chat(stack, state.secret, `hello ${i}`)).status, 200); sent++; }
  assert.equal((await chat(stack, state.secret, 'mock:status=400')).status, 400);
  sent++;
  state.sent = sent;
  const q = { tenant_id: tenant.id, key_id: state.key.id };
  const report = await waitFor(async () => {
    const r = await usage(stack, { ...q, from: new Date(Date.now() - 86400000).toISOString() });
    return r.totals.requests === sent ? r : null;
  }, 20000, 'the usage to reach the control plane');
  assert.equal(report.totals.errors, 1);

  // overview: the tenant's numbers, the hourly chart's table, the top key, the data plane
  await go(admin, '#/');
  assert.match(await admin.locator('#stat-requests dd').innerText(), new RegExp(`^${sent}\\b`));
  assert.match(await admin.locator('#stat-errors dd').innerText(), /16\.7%|1 errors/);
  await admin.locator('#chart-requests summary').click();
  const counts = await admin.locator('#chart-requests table.chart-data tbody tr').evaluateAll((trs) => trs.map((tr) => Number(tr.cells[1].textContent)));
  assert.equal(counts.reduce((a, b) => a + b, 0), sent, 'the chart holds every request');
  assert.equal(await admin.locator('#chart-requests canvas').count(), 1, 'uPlot drew the chart');
  assert.match(await admin.getByRole('region', { name: 'Top keys', exact: true }).innerText(), /checkout-service/);
  await checkView(admin, 'the overview');

  // the key's own page
  await go(admin, `#/t/${tenant.id}/keys/${state.key.id}`);
  assert.equal(await admin.locator('#key-requests').innerText(), String(sent));
  assert.equal(await admin.locator('#key-usage-chart canvas').count(), 1);
  // its monthly budget with what it spent (the budget's spent_usd)
  const [budget] = (await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/budgets?key_id=${state.key.id}`, { token: stack.admin })).body.data;
  assert.ok(Number(budget.spent_usd) > 0, 'the key spent something');
  assert.equal(Number(budget.spent_usd), report.totals.cost_usd);
  const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 });
  const budgetRow = admin.locator('tr', { hasText: 'monthly' });
  assert.match(await budgetRow.innerText(), new RegExp(`\\$25\\.50\\s+${usd.format(Number(budget.spent_usd)).replace(/[$.]/g, (c) => `\\${c}`)}`));

  // the usage explorer's CSV adds up to the API's totals
  await go(admin, `#/usage?tenant_id=${tenant.id}&bucket=hour&group_by=key`);
  const from = await admin.evaluate(() => document.querySelector('#usage-report p').textContent);
  const [, rFrom, rTo] = /From (\S+) to (\S+)/.exec(from);
  const [download] = await Promise.all([admin.waitForEvent('download'), admin.locator('#usage-csv').click()]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
  const cols = csv[0].split(',');
  const rows = csv.slice(1).map((l) => l.split(','));
  const api = await usage(stack, { tenant_id: tenant.id, from: rFrom, to: rTo, bucket: 'hour', group_by: 'key' });
  const sum = (c) => rows.reduce((a, r) => a + Number(r[cols.indexOf(c)]), 0);
  assert.equal(rows.length, api.series.length);
  for (const c of ['requests', 'errors', 'prompt_tokens', 'completion_tokens']) assert.equal(sum(c), api.totals[c], c);
  const nano = rows.reduce((a, r) => a + BigInt(Math.round(Number(r[cols.indexOf('cost_usd')]) * 1e9)), 0n);
  assert.equal(nano, BigInt(Math.round(api.totals.cost_usd * 1e9)), 'cost_usd');
  assert.ok(api.totals.requests >= sent);
  await checkView(admin, 'the usage explorer');

});

test('the request log lists that traffic, and filters it by status', async (t) => {
  if (!(await hasEndpoint(`/api/v1/requests?tenant_id=${tenant.id}`))) {
    t.skip('GET /api/v1/requests (the request log endpoint) is not served by this control plane');
    return;
  }
  const sent = state.sent;
  await go(admin, `#/requests?tenant_id=${tenant.id}&key_id=${state.key.id}`);
  const logRows = admin.locator('#requests-list tbody tr');
  assert.equal(await logRows.count(), sent);
  assert.match(await logRows.first().innerText(), /checkout-service/);
  // the endpoint each request used (chat.completions, messages, responses...)
  assert.match(await logRows.first().innerText(), /chat\.completions/);
  await go(admin, `#/requests?tenant_id=${tenant.id}&key_id=${state.key.id}&status=4xx`);
  assert.equal(await logRows.count(), 1);
  assert.match(await logRows.first().innerText(), /400/);
  await checkView(admin, 'the request log');
});

test('the request log pages with a cursor kept in the URL', async (t) => {
  if (!(await hasEndpoint(`/api/v1/requests?tenant_id=${tenant.id}`))) {
    t.skip('GET /api/v1/requests (the request log endpoint) is not served by this control plane');
    return;
  }
  // 60 more events for the key, as a data plane reports them
  const lines = [];
  for (let i = 0; i < 60; i++) {
    lines.push(JSON.stringify({ id: crypto.randomUUID(), ts: new Date(Date.now() - 3600000 - i * 1000).toISOString(), request_id: `page-${i}`,
      tenant_id: tenant.id, key_id: state.key.id, model: 'gpt-4o-mini', provider: 'mock', upstream_model: 'gpt-4o-mini-2024-07-18',
      endpoint: 'chat.completions', status: 200, streamed: false, cache_hit: false, latency_ms: 12, ttfb_ms: 5,
      prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0, reasoning_tokens: 0, cost_usd: 0.000001 }));
  }
  const r = await fetch(`${stack.base}/dp/v1/usage`, { method: 'POST', headers: { authorization: 'Bearer test-dp-token', 'content-type': 'application/x-ndjson' }, body: `${lines.join('\n')}\n` });
  assert.equal(r.status, 200);
  await go(admin, `#/requests?tenant_id=${tenant.id}&key_id=${state.key.id}`);
  const rows = admin.locator('#requests-list tbody tr');
  assert.equal(await rows.count(), 50);
  const first = await rows.allInnerTexts();
  await admin.getByRole('link', { name: 'Next page' }).click();
  // the click changes the hash; the view may still show the first page for a frame or two, so
  // wait for the second page's rows (the assertion below says it if they never come)
  await admin.waitForURL(/cursor=/);
  await admin.waitForFunction((n) => document.querySelectorAll('#requests-list tbody tr').length === n,
    60 + state.sent - 50, { timeout: 10000 }).catch(() => {});
  await settle(admin);
  assert.match(admin.url(), /cursor=/);
  assert.equal(await rows.count(), 60 + state.sent - 50);
  const second = await rows.allInnerTexts();
  assert.ok(!second.some((x) => first.includes(x)) || second.length === 0, 'no row on both pages');
  await admin.reload();
  await settle(admin);
  assert.equal(await rows.count(), 60 + state.sent - 50, 'the page is the URL');
  assertClean(admin, 'the request log pages');
});

test('a viewer sees the keys but no control to change them', async () => {
  await stack.cp.makeUser('viewer@acme.test', { tenantId: tenant.id, role: 'viewer' });
  const page = await newPage(browser, stack);
  await signIn(page, 'viewer@acme.test', ADMIN.password);
  await go(page, `#/t/${tenant.id}/keys`);
  assert.match(await page.locator('#keys-list').innerText(), /checkout-service/);
  assert.equal(await page.getByRole('button', { name: 'Create key' }).count(), 0);
  await go(page, `#/t/${tenant.id}/keys/${state.key.id}`);
  for (const id of ['#rotate-key', '#revoke-key', '#delete-key', '#edit-key-form', '#key-budget-form']) {
    assert.equal(await page.locator(id).count(), 0, `${id} is not shown to a viewer`);
  }
  assert.equal(await page.locator('#app-main button:not([type=submit])').count(), 0, 'no button on the key page');
  for (const view of ['#/', `#/usage?tenant_id=${tenant.id}`, `#/requests?tenant_id=${tenant.id}`]) {
    await go(page, view);
    assert.equal(await page.locator('#app-main button').filter({ hasNotText: /Apply filters|Show the numbers/ }).count(), 0, `no write control on ${view}`);
  }
  await checkView(page, 'the viewer\'s pages');
  await page.context().close();
});

test('revoke asks first; after it the data plane refuses the key', async () => {
  await go(admin, `#/t/${tenant.id}/keys/${state.key.id}`);
  // by keyboard: Enter opens the dialog with focus on Cancel, Escape closes it and focus
  // returns to the button
  await admin.locator('#revoke-key').focus();
  await admin.keyboard.press('Enter');
  const dialog = admin.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /Revoke "checkout-service"/);
  assert.equal(await admin.evaluate(() => document.activeElement.textContent), 'Cancel');
  await admin.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await admin.evaluate(() => document.activeElement.id), 'revoke-key');
  await admin.locator('#revoke-key').click();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/keys/${state.key.id}`, { token: stack.admin })).body.status, 'active', 'Cancel changes nothing');

  await admin.locator('#revoke-key').click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await admin.locator('#key-status', { hasText: 'revoked' }).waitFor();
  assert.equal(await admin.locator('#revoke-key').count(), 0, 'no revoke button on a revoked key');
  assert.equal((await stack.cp.api('GET', `/api/v1/tenants/${tenant.id}/keys/${state.key.id}`, { token: stack.admin })).body.status, 'revoked');
  await waitFor(async () => (await chat(stack, state.secret, 'after revoke')).status === 401, 15000, 'the data plane to refuse the revoked key');
  assertClean(admin, 'revoking');

  // the list's status filter, from the URL
  await go(admin, `#/t/${tenant.id}/keys?status=revoked`);
  assert.equal(await admin.locator('form.filters').getByLabel('Status').inputValue(), 'revoked');
  assert.match(await admin.locator('#keys-list tbody').innerText(), /checkout-service/);
  await admin.locator('form.filters').getByLabel('Status').selectOption('active');
  await admin.locator('form.filters').getByRole('button', { name: 'Apply filters' }).click();
  await settle(admin);
  assert.match(admin.url(), /status=active/);
  assert.match(await admin.locator('#keys-list').innerText(), /No key matches these filters/);
});

test('rotate shows the new secret once and the old one stops working', async () => {
  await go(admin, `#/t/${tenant.id}/keys`);
  await admin.locator('#create-key').click();
  const form = admin.locator('#create-key-form');
  await form.getByLabel('Name').fill('<img src=x onerror="window.__xss=1">');
  await form.getByLabel('gpt-4o-mini').check();
  await form.getByRole('button', { name: 'Create key' }).click();
  const old = await admin.getByLabel('The new key').inputValue();
  const link = admin.locator('#keys-list a', { hasText: '<img src=x onerror="window.__xss=1">' });
  await link.click();
  await settle(admin);
  assert.equal(await admin.locator('h1').first().innerText().then((t) => t.includes('<img src=x onerror="window.__xss=1">')), true, 'the name is text');
  await admin.locator('#rotate-key').click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Rotate' }).click();
  const box = admin.getByLabel('The new key');
  await box.waitFor();
  const fresh = await box.inputValue();
  assert.match(fresh, /^tg-[A-Za-z0-9_-]{43}$/);
  assert.notEqual(fresh, old);
  await waitFor(async () => (await chat(stack, fresh, 'new')).status === 200, 15000, 'the new secret to work');
  assert.equal((await chat(stack, old, 'old')).status, 401, 'the old secret is refused');
  assert.equal(await admin.evaluate(() => window.__xss), undefined, 'the name never ran');
  assertClean(admin, 'rotating');
});
