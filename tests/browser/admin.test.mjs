// admin.test.mjs: a platform admin sets Tollgate up in a real browser, as a person would: a
// tenant, a user with a role, a provider (its credentials never shown back), a route with
// fallbacks, retries and timeouts, a price, a budget and an API token (shown once); then finds
// each change in the audit log with its before/after diff. Every admin view passes an axe-core
// scan and does not scroll sideways at 390 or 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, signedInPage, stopAll, go, settle, assertClean, axe, noOverflow, ADMIN } from './lib/browser.mjs';
import { adminRoutes, api } from './lib/admin.mjs';

let stack;
let browser;
let page;
const ids = {};

before(async () => {
  stack = await startStack({ dataplane: false });
  ({ browser, page } = await signedInPage(stack));
});

after(() => stopAll(browser, stack));

const form = (label) => page.locator(`form[aria-label="${label}"]`);
async function get(p) { return api(stack, 'GET', p); }

test('create a tenant: the slug is checked as it is typed, a taken one is named next to its field; rename it', async () => {
  await go(page, '#/tenants');
  assert.match(await page.locator('main').innerText(), /No tenants yet — create one/);
  await page.getByRole('button', { name: 'Create tenant' }).click();
  const f = form('Create tenant');
  await f.getByLabel('Slug').fill('Acme Inc');
  assert.match(await f.locator('[data-field=slug] .field-error').innerText(), /lower-case/);
  assert.equal(await f.getByLabel('Slug').getAttribute('aria-invalid'), 'true');
  await f.getByLabel('Slug').fill('acme');
  assert.equal(await f.locator('[data-field=slug] .field-error').innerText(), '');
  await f.getByLabel(/^Name/).fill('Acme Inc');
  await f.getByLabel(/^Requests per minute/).fill('600');
  await f.getByRole('button', { name: 'Create tenant' }).click();
  await page.getByText('Tenant acme was created.').waitFor();
  const [t] = (await get('/api/v1/tenants?slug=acme')).data;
  assert.equal(t.name, 'Acme Inc');
  assert.equal(t.rpm_limit, 600);
  ids.tenant = t.id;

  // the same slug again: the API's 409 is shown under the slug field, nothing is created
  await page.getByRole('button', { name: 'Create tenant' }).first().click();
  await form('Create tenant').getByLabel('Slug').fill('acme');
  await form('Create tenant').getByLabel(/^Name/).fill('Another');
  await form('Create tenant').getByRole('button', { name: 'Create tenant' }).click();
  await page.locator('[data-field=slug] .field-error', { hasText: 'is taken' }).waitFor();
  assert.equal((await get('/api/v1/tenants')).data.length, 1);
  await form('Create tenant').getByRole('button', { name: 'Cancel' }).click();

  await page.getByRole('button', { name: 'Rename acme' }).click();
  const edit = form('Edit tenant acme');
  await edit.getByLabel(/^Name/).fill('Acme Corporation');
  await edit.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Tenant acme was saved.').waitFor();
  assert.equal((await get(`/api/v1/tenants/${t.id}`)).name, 'Acme Corporation');
  assertClean(page);
});

test('create a user with a role in the tenant, change the role, remove a member after confirming', async () => {
  await go(page, '#/users');
  await page.getByRole('button', { name: 'Create user' }).click();
  const f = form('Create user');
  await f.getByLabel(/^Email/).fill('ann@example.com');
  await f.getByLabel('Password', { exact: true }).fill('short');
  assert.match(await f.locator('[data-field=password] .field-error').innerText(), /12 characters/);
  await f.getByLabel('Password', { exact: true }).fill('a-long-enough-password');
  await f.getByLabel('Name', { exact: true }).fill('Ann Example');
  await f.getByLabel('Tenant (optional)').selectOption(ids.tenant);
  await f.getByLabel('Role in that tenant').selectOption('member');
  await f.getByRole('button', { name: 'Create user' }).click();
  await page.getByText('ann@example.com was created.').waitFor();
  const [ann] = (await get('/api/v1/users?email=ann@example.com')).data;
  ids.ann = ann.id;
  let members = (await get(`/api/v1/tenants/${ids.tenant}/members`)).data;
  assert.deepEqual(members.map((m) => [m.email, m.role]), [['ann@example.com', 'member']]);

  // the tenant page lists the member with its role; the role changes in place
  await go(page, `#/t/${ids.tenant}`);
  // choosing a role changes nothing until Save (arrow keys step through the options)
  const save = page.getByRole('button', { name: "Save ann@example.com's role" });
  assert.equal(await save.isDisabled(), true);
  await page.getByLabel('Role of ann@example.com').selectOption('admin');
  assert.equal((await get(`/api/v1/tenants/${ids.tenant}/members`)).data[0].role, 'member');
  await save.click();
  await page.getByText('ann@example.com is now admin.').waitFor();
  members = (await get(`/api/v1/tenants/${ids.tenant}/members`)).data;
  assert.equal(members[0].role, 'admin');

  // a second member, created from the tenant page, then removed: Cancel keeps it, Remove removes it
  await page.getByRole('button', { name: 'Create a user in this tenant' }).click();
  const g = form('Create a user in this tenant');
  await g.getByLabel(/^Email/).fill('bob@example.com');
  await g.getByLabel(/^Password/).fill('another-long-password');
  await g.getByLabel('Role').selectOption('viewer');
  await g.getByRole('button', { name: 'Create user' }).click();
  await page.getByText('bob@example.com was created as viewer.').waitFor();
  await page.getByRole('button', { name: 'Remove bob@example.com' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await get(`/api/v1/tenants/${ids.tenant}/members`)).data.length, 2);
  await page.getByRole('button', { name: 'Remove bob@example.com' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
  await page.getByText('bob@example.com was removed.').waitFor();
  assert.equal((await get(`/api/v1/tenants/${ids.tenant}/members`)).data.length, 1);
  assertClean(page);
});

test('add a provider: the API key goes in a password field and is never shown back', async () => {
  await go(page, '#/providers');
  assert.match(await page.locator('main').innerText(), /No providers yet — add one/);
  await page.getByRole('button', { name: 'Add provider' }).click();
  const f = form('Add provider');
  await f.getByLabel(/^Name/).fill('mock');
  await f.getByLabel(/^Base URL/).fill('ftp://nope');
  assert.match(await f.locator('[data-field=base_url] .field-error').innerText(), /http/);
  await f.getByLabel(/^Base URL/).fill('http://127.0.0.1:9/v1');
  assert.equal(await f.getByLabel('API key').getAttribute('type'), 'password');
  await f.getByLabel('API key').fill('sk-very-secret-upstream-key');
  await f.getByRole('button', { name: 'Add provider' }).click();
  await page.getByText('Provider mock was added.').waitFor();
  const [p] = (await get('/api/v1/providers')).data;
  ids.provider = p.id;
  assert.equal(p.has_credentials, true);
  assert.deepEqual(p.credential_names, ['api_key']);
  assert.match(await page.locator('main table').innerText(), /set: api_key/);
  await page.getByRole('button', { name: 'Edit mock' }).click();
  const e = form('Edit provider mock');
  assert.equal(await e.getByLabel('New API key').inputValue(), '', 'the stored key is not filled in');
  assert.ok(!(await page.content()).includes('sk-very-secret-upstream-key'), 'the key is nowhere in the page');

  // kind bedrock asks for its own fields
  await e.getByLabel('Kind').selectOption('bedrock');
  assert.equal(await e.getByLabel('AWS region').isVisible(), true);
  assert.equal(await e.getByLabel('New API key').isVisible(), false);
  await e.getByRole('button', { name: 'Cancel' }).click();
  assertClean(page);
});

test('add a route with two targets in fallback order, retries and timeouts', async () => {
  await go(page, '#/routes');
  await page.getByRole('button', { name: 'Add route' }).click();
  const f = form('Add route');
  await f.getByLabel(/^Alias/).fill('gpt-4o-mini');
  await f.getByLabel('Provider model').fill('gpt-4o-mini-2024-07-18');
  await f.getByRole('button', { name: 'Add target' }).click();
  await f.getByLabel('Provider model').nth(1).fill('gpt-4o');
  await f.getByLabel('Weight').nth(0).fill('0');
  await f.getByLabel('Weight').nth(1).fill('0');
  await f.getByRole('button', { name: 'Add route' }).click();
  assert.match(await f.locator('[data-field=targets] .field-error').innerText(), /more than 0/);
  await f.getByLabel('Weight').nth(1).fill('3');
  await f.getByRole('button', { name: 'Move target 2 up' }).click();
  await f.getByLabel('Retry: attempts per target').fill('3');
  await f.getByLabel('Retry on statuses').fill('503, 429, 700');
  assert.match(await f.locator('[data-field=on_status] .field-error').innerText(), /700/);
  await f.getByLabel('Retry on statuses').fill('503, 429');
  await f.getByLabel(/^First byte timeout/).fill('900000');
  await f.getByRole('button', { name: 'Add route' }).click();
  assert.match(await f.locator('[data-field=first_byte_timeout_ms] .field-error').innerText(), /attempt timeout/);
  await f.getByLabel(/^First byte timeout/).fill('15000');
  await f.getByRole('button', { name: 'Add route' }).click();
  await page.getByText('Route gpt-4o-mini was added.').waitFor();
  const [r] = (await get('/api/v1/routes')).data;
  ids.route = r.id;
  assert.deepEqual(r.targets.map((t) => [t.model, t.weight]), [['gpt-4o', 3], ['gpt-4o-mini-2024-07-18', 0]]);
  assert.deepEqual(r.retry, { max_attempts: 3, on_status: [429, 503] });
  assert.equal(r.first_byte_timeout_ms, 15000);
  const row = await page.locator('main table').innerText();
  assert.match(row, /mock\/gpt-4o weight 3/);
  assert.match(row, /3 attempts per target; on 429, 503/);
  assertClean(page);
});

test("editing a route keeps an admin's model info override; the strategy can be cheapest", async () => {
  const r0 = await get(`/api/v1/routes/${ids.route}`);
  const targets = r0.targets.map((t, i) => ({ provider_id: t.provider_id, model: t.model, weight: t.weight,
    ...(i === 1 ? { info: { context_window: 4096, capabilities: { tools: false } } } : {}) }));
  await api(stack, 'PATCH', `/api/v1/routes/${ids.route}`, { targets });
  await go(page, '#/routes');
  await page.getByRole('button', { name: 'Edit gpt-4o-mini' }).click();
  const f = form('Edit route gpt-4o-mini');
  await f.getByLabel('Strategy (how the first target is picked)').selectOption('cheapest');
  await f.getByRole('button', { name: 'Save route' }).click();
  await page.getByText('Route gpt-4o-mini was saved.').waitFor();
  const r = await get(`/api/v1/routes/${ids.route}`);
  assert.equal(r.strategy, 'cheapest');
  assert.deepEqual(r.targets.map((t) => t.info), [undefined, { context_window: 4096, capabilities: { tools: false } }]);
  assertClean(page);
});

test('set a price, add a budget', async () => {
  await go(page, '#/prices');
  await page.getByRole('button', { name: 'Set a price' }).click();
  const f = form('Set a price');
  await f.getByLabel(/^Provider model/).fill('gpt-4o');
  await f.getByLabel(/^Input, USD/).fill('-1');
  assert.match(await f.locator('[data-field=input_per_mtok] .field-error').innerText(), /at least 0/);
  await f.getByLabel(/^Input, USD/).fill('2.5');
  await f.getByLabel(/^Output, USD/).fill('10');
  await f.getByRole('button', { name: 'Save price' }).click();
  await page.getByText('The price of gpt-4o was saved.').waitFor();
  const [pr] = (await get('/api/v1/prices')).data;
  assert.deepEqual([pr.model, pr.input_per_mtok, pr.output_per_mtok, pr.cached_input_per_mtok], ['gpt-4o', 2.5, 10, null]);

  await go(page, `#/t/${ids.tenant}/budgets`);
  assert.match(await page.locator('main').innerText(), /No budgets yet — add one/);
  await page.getByRole('button', { name: 'Add budget' }).click();
  const b = form('Add budget');
  await b.getByLabel('Period').selectOption('monthly');
  await b.getByLabel(/^Limit/).fill('25');
  await b.getByLabel(/^Alert at/).fill('80');
  await b.getByRole('button', { name: 'Add budget' }).click();
  await page.getByText('The budget was added.').waitFor();
  const [bud] = (await get(`/api/v1/tenants/${ids.tenant}/budgets`)).data;
  assert.deepEqual([bud.period, bud.limit_usd, bud.alert_threshold, bud.key_id], ['monthly', 25, 0.8, null]);
  const text = await page.locator('main table').innerText();
  // the period says when it began (the API's period_start: this month's first day, UTC)
  assert.match(text, /Whole tenant\s+monthly, since \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\s+\$25\.00\s+80%/);
  const start = new Date(bud.period_start);
  assert.deepEqual([start.getUTCDate(), start.getUTCHours()], [1, 0], bud.period_start);
  // spent this period: the API's spent_usd when it has one, else a dash
  if (bud.spent_usd === undefined) assert.match(text, /80%\s+—/);
  else assert.match(text, /\$0\.00 of \$25\.00/);
  assertClean(page);
});

test('an API token: its secret is shown once with a copy button and a warning; revoking asks first', async () => {
  await go(page, '#/tokens');
  await page.getByRole('button', { name: 'Create token' }).click();
  const f = form('Create token');
  await f.getByLabel(/^Name/).fill('ci-deploy');
  await f.getByLabel('Tenant').selectOption(ids.tenant);
  await f.getByLabel('Role').selectOption('admin');
  await f.getByRole('button', { name: 'Create token' }).click();
  const secret = await page.locator('.secret-once input').inputValue();
  assert.match(secret, /^tgat-[A-Za-z0-9_-]{43}$/);
  assert.match(await page.locator('.secret-once').innerText(), /shown only once/);
  await page.locator('.secret-once').getByRole('button', { name: 'Copy' }).click();
  await page.locator('.secret-once', { hasText: 'Copied.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  const me = await stack.cp.api('GET', '/api/v1/me', { token: secret });
  assert.equal(me.status, 200);
  // gone once the page is reloaded
  await page.reload();
  await settle(page);
  assert.equal(await page.locator('.secret-once').count(), 0);
  assert.ok(!(await page.content()).includes(secret));
  assert.match(await page.locator('main table').innerText(), new RegExp(`ci-deploy\\s+…${secret.slice(-4)}\\s+admin\\s+Acme Corporation\\s+active`));
  await page.getByRole('button', { name: 'Revoke ci-deploy' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click();
  await page.getByText('The token ci-deploy was revoked.').waitFor();
  assert.equal((await stack.cp.api('GET', '/api/v1/me', { token: secret })).status, 401);
  assertClean(page);
});

test('the audit log shows those changes; a row opens its diff; filters live in the URL; the chain verifies', async () => {
  // one change by another actor: Ann, admin of the tenant, renames it
  const ann = await stack.cp.login('ann@example.com', 'a-long-enough-password');
  await api(stack, 'PATCH', `/api/v1/tenants/${ids.tenant}`, { name: 'Acme Corp.' }, ann);
  await go(page, '#/audit');
  await page.locator('.verify-ok', { hasText: 'Intact' }).waitFor();
  // when the last full verification ran is shown, and one can be asked for
  await page.locator('.verify-full', { hasText: 'Last full verification: ' }).waitFor();
  await page.getByRole('button', { name: 'Verify everything' }).click();
  await page.locator('.verify-ok', { hasText: 'every row checked' }).waitFor();
  const table = page.locator('main table.audit');
  const text = await table.innerText();
  for (const a of ['tenant.create', 'tenant.update', 'user.create', 'member.put', 'member.delete', 'provider.create', 'route.create', 'price.put', 'budget.create', 'token.create', 'token.revoke']) {
    assert.match(text, new RegExp(a.replace('.', '\\.')), `${a} is listed`);
  }
  // the rename: name before and after
  const row = table.locator('tbody tr', { hasText: 'tenant.update' }).filter({ hasText: 'user:admin@example.com' });
  await row.getByRole('button', { name: /Show diff/ }).click();
  const diff = page.locator('table.diff');
  await diff.waitFor();
  const d = await diff.innerText();
  assert.match(d, /name\s+"Acme Inc"\s+"Acme Corporation"/);
  assert.doesNotMatch(d, /\bslug\b/, 'only the changed fields');
  await row.getByRole('button', { name: /Hide diff/ }).click();
  assert.equal(await page.locator('table.diff').count(), 0, 'closes again');
  // the provider's creation: every field after, its secret nowhere
  await table.locator('tbody tr', { hasText: 'provider.create' }).getByRole('button', { name: /Show diff/ }).click();
  const pd = await page.locator('table.diff').innerText();
  assert.match(pd, /base_url\s+—\s+"http:\/\/127\.0\.0\.1:9\/v1"/);
  assert.ok(!pd.includes('sk-very-secret'), 'no credential in the diff');

  // filter by action through the form: the URL carries it, a reload keeps it
  await page.getByLabel('Action').selectOption('route.create');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.waitForURL(/#\/audit\?action=route\.create$/);
  await settle(page);
  await page.reload();
  await settle(page);
  assert.equal(await page.getByLabel('Action').inputValue(), 'route.create');
  const rows = await page.locator('main table.audit tbody tr').allInnerTexts();
  assert.equal(rows.length, 1);
  assert.match(rows[0], /route\.create/);
  // a target link filters by that target; a time range with nothing in it says so
  const filtered = async (ok) => {
    const t = await page.locator('main').innerText();
    assert.doesNotMatch(t, /does not filter the audit log by/, 'the API applies the filter');
    await ok(t);
  };
  await page.locator('main table.audit tbody tr').first().getByRole('link', { name: /route/ }).last().click();
  await page.waitForURL(new RegExp(`target_id=${ids.route}`));
  await settle(page);
  assert.equal(await page.getByLabel('Target id').inputValue(), ids.route);
  await filtered(async () => {
    const got = await page.locator('main table.audit tbody tr').allInnerTexts();
    assert.equal(got.length, 1);
    assert.match(got[0], /route\.create/);
  });
  // an actor link filters by that actor
  await go(page, '#/audit');
  await page.locator('main table.audit').getByRole('link', { name: 'user:ann@example.com' }).first().click();
  await page.waitForURL(new RegExp(`actor_id=${ids.ann}`));
  await settle(page);
  await filtered(async () => {
    const got = await page.locator('main table.audit tbody tr').allInnerTexts();
    assert.equal(got.length, 1);
    assert.match(got[0], /user:ann@example\.com\s+tenant\.update/);
  });
  await go(page, '#/audit?from=2001-01-01T00:00:00Z&to=2001-01-02T00:00:00Z');
  await filtered(async (t) => assert.match(t, /No changes match these filters/));
  assertClean(page);
});

test('edit a provider: a new key replaces the stored one unseen, Remove takes it away; disable and enable a user', async () => {
  await go(page, '#/providers');
  await page.getByRole('button', { name: 'Edit mock' }).click();
  let e = form('Edit provider mock');
  await e.getByLabel(/^Base URL/).fill('http://127.0.0.1:10/v1');
  await e.getByLabel('New API key').fill('sk-the-second-key');
  await e.getByLabel('Extra upstream headers (optional)').fill('OpenAI-Organization org-1');
  assert.match(await e.locator('[data-field=headers] .field-error').innerText(), /Name: value/);
  await e.getByLabel('Extra upstream headers (optional)').fill('OpenAI-Organization: org-1');
  await e.getByRole('button', { name: 'Save provider' }).click();
  await page.getByText('Provider mock was saved.').waitFor();
  let p = await get(`/api/v1/providers/${ids.provider}`);
  assert.deepEqual([p.base_url, p.has_credentials, p.headers], ['http://127.0.0.1:10/v1', true, { 'OpenAI-Organization': 'org-1' }]);
  assert.ok(!(await page.content()).includes('sk-the-second-key'));
  await page.getByRole('button', { name: 'Edit mock' }).click();
  e = form('Edit provider mock');
  await e.getByLabel('Remove the stored credentials').check();
  await e.getByRole('button', { name: 'Save provider' }).click();
  await e.waitFor({ state: 'detached' });
  await page.getByText('Provider mock was saved.').waitFor();
  p = await get(`/api/v1/providers/${ids.provider}`);
  assert.equal(p.has_credentials, false);
  assert.match(await page.locator('main table').innerText(), /mock\s+openai\s+\S+\s+none/);

  await go(page, '#/users?email=ann@example.com');
  assert.equal(await page.getByRole('region', { name: 'Users', exact: true }).locator('tbody tr').count(), 1, 'the email filter from the URL');
  await page.getByRole('button', { name: 'Disable ann@example.com' }).click();
  await page.getByText('ann@example.com is now disabled.').waitFor();
  assert.equal((await get(`/api/v1/users/${ids.ann}`)).disabled, true);
  await page.getByRole('button', { name: 'Enable ann@example.com' }).click();
  await page.getByText('ann@example.com is now active.').waitFor();
  assert.equal((await get(`/api/v1/users/${ids.ann}`)).disabled, false);
  assertClean(page);
});

test('delete a tenant after confirming; Cancel keeps it', async () => {
  await api(stack, 'POST', '/api/v1/tenants', { slug: 'doomed', name: 'Doomed' });
  await go(page, '#/tenants');
  await page.getByRole('button', { name: 'Delete doomed' }).click();
  const dlg = page.getByRole('dialog');
  assert.match(await dlg.innerText(), /cannot be undone/);
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await get('/api/v1/tenants?slug=doomed')).data.length, 1);
  await page.getByRole('button', { name: 'Delete doomed' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete tenant' }).click();
  await page.getByText('Tenant doomed was deleted.').waitFor();
  assert.equal((await get('/api/v1/tenants?slug=doomed')).data.length, 0);
  assertClean(page);
});

test('every admin view: no critical or serious axe violation, no sideways scroll at 390 or 1280 px, forms keyboard-usable', async () => {
  for (const hash of adminRoutes({ tid: ids.tenant })) {
    await go(page, hash);
    // open the first create/edit form so it is scanned too
    const opener = page.locator('main .page-actions button').first();
    if (await opener.count()) await opener.click();
    assert.deepEqual(await axe(page), [], `axe on ${hash}`);
    assert.deepEqual(await noOverflow(page), [], `overflow on ${hash}`);
    // every field of the page has a label
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea')]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.name || e.id));
    assert.deepEqual(unlabelled, [], `unlabelled fields on ${hash}`);
  }
  // keyboard: a form opens, fills and submits without a mouse
  await go(page, '#/tenants');
  await page.getByRole('button', { name: 'Create tenant' }).focus();
  await page.keyboard.press('Enter');
  await page.keyboard.type('kbd');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Keyboard Tenant');
  await page.keyboard.press('Enter');
  await page.getByText('Tenant kbd was created.').waitFor();
  assertClean(page);
});

test('the profile: a new name shows in the header; a new password keeps this session and ends the old password', async () => {
  await go(page, '#/me');
  const nameForm = form('Change your name');
  await nameForm.getByRole('textbox', { name: 'Name' }).fill('Root Admin');
  await nameForm.getByRole('button', { name: 'Save name' }).click();
  await page.getByText('Your name was saved.').waitFor();
  assert.equal(await page.locator('#whoami').innerText(), 'Root Admin');
  const pw = form('Change your password');
  await pw.locator('input[name=current_password]').fill('not-my-password');
  await pw.locator('input[name=password]').fill('a-brand-new-password-1');
  await pw.locator('input[name=confirm]').fill('a-brand-new-password-2');
  assert.match(await pw.locator('[data-field=confirm] .field-error').innerText(), /differ/);
  await pw.locator('input[name=confirm]').fill('a-brand-new-password-1');
  await pw.getByRole('button', { name: 'Change password' }).click();
  // the API's wrong_password is shown next to the current password
  await pw.locator('[data-field=current_password] .field-error', { hasText: /password/i }).waitFor();
  await pw.locator('input[name=current_password]').fill(ADMIN.password);
  await pw.getByRole('button', { name: 'Change password' }).click();
  await page.getByText('Your password was changed.').waitFor();
  // this browser session carries on (its new CSRF token included): a change still works
  await nameForm.getByRole('textbox', { name: 'Name' }).fill('Root');
  await nameForm.getByRole('button', { name: 'Save name' }).click();
  await page.getByText('Your name was saved.').waitFor();
  const old = await stack.cp.api('POST', '/api/v1/auth/login', { body: { email: ADMIN.email, password: ADMIN.password } });
  assert.equal(old.status, 401);
  assertClean(page);
});
