// roles.test.mjs: what each role sees in a real browser. A viewer finds no create, edit, delete,
// rotate or revoke control on any view of the dashboard; a tenant admin cannot reach another
// tenant's pages, not even by typing their URL: they look exactly like the pages of a tenant
// that does not exist.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, stopAll, launch, newPage, signIn, go, settle, assertClean } from './lib/browser.mjs';
import { allRoutes, api, makeUser, writeControls, mainText, randomId } from './lib/admin.mjs';

const PASSWORD = 'a-password-for-tests';
let stack;
let browser;
let A; let B; let keyA; let keyB;

before(async () => {
  stack = await startStack({ dataplane: false });
  browser = await launch();
  A = await api(stack, 'POST', '/api/v1/tenants', { slug: 'alpha', name: 'Alpha' });
  B = await api(stack, 'POST', '/api/v1/tenants', { slug: 'bravo', name: 'Bravo Hidden Tenant' });
  const prov = await api(stack, 'POST', '/api/v1/providers', { name: 'upstream', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', credentials: { api_key: 'sk-x' } });
  await api(stack, 'POST', '/api/v1/routes', { alias: 'gpt-4o-mini', targets: [{ provider_id: prov.id, model: 'gpt-4o-mini' }] });
  await api(stack, 'PUT', '/api/v1/prices', { provider_id: prov.id, model: 'gpt-4o-mini', input_per_mtok: 0.15, output_per_mtok: 0.6 });
  keyA = await api(stack, 'POST', `/api/v1/tenants/${A.id}/keys`, { name: 'alpha-key', models: ['gpt-4o-mini'] });
  keyB = await api(stack, 'POST', `/api/v1/tenants/${B.id}/keys`, { name: 'bravo-hidden-key' });
  await api(stack, 'POST', `/api/v1/tenants/${A.id}/budgets`, { period: 'monthly', limit_usd: 10 });
  await api(stack, 'POST', `/api/v1/tenants/${B.id}/budgets`, { period: 'daily', limit_usd: 77.25 });
  await makeUser(stack, 'viewer@example.com', { name: 'Vera Viewer', tenantId: A.id, role: 'viewer', password: PASSWORD });
  await makeUser(stack, 'admin-a@example.com', { name: 'Ada Admin', tenantId: A.id, role: 'admin', password: PASSWORD });
  await makeUser(stack, 'bravo-member@example.com', { name: 'Bravo Member', tenantId: B.id, role: 'member', password: PASSWORD });
  // a third tenant the admin of A also administers, with a user of its own
  const C = await api(stack, 'POST', '/api/v1/tenants', { slug: 'charlie', name: 'Charlie' });
  const ada = (await api(stack, 'GET', '/api/v1/users?email=admin-a@example.com')).data[0];
  await api(stack, 'PUT', `/api/v1/tenants/${C.id}/members/${ada.id}`, { role: 'admin' });
  await makeUser(stack, 'carl@example.com', { name: 'Carl', tenantId: C.id, role: 'member', password: PASSWORD });
});

after(() => stopAll(browser, stack));

test('a viewer sees no create, edit, delete, rotate or revoke control on any view', async () => {
  const page = await newPage(browser, stack);
  await signIn(page, 'viewer@example.com', PASSWORD);
  for (const hash of allRoutes({ tid: A.id, kid: keyA.id })) {
    await go(page, hash);
    await settle(page);
    // its own name and password are the only things a viewer changes, on its own profile
    const allowForms = hash === '#/me' ? ['Change your name', 'Change your password'] : [];
    assert.deepEqual(await writeControls(page, { allowForms }), [], `write controls on ${hash} for a viewer`);
    assert.doesNotMatch(await mainText(page), /Something went wrong/, `${hash} failed for a viewer`);
  }
  // and the views show the viewer what it may read: the tenant's key, budget and members
  await go(page, `#/t/${A.id}`);
  const text = await mainText(page);
  assert.match(text, /alpha-key/);
  assert.match(text, /\$10\.00/);
  assert.match(text, /viewer@example\.com/);
  assert.match(text, /admin-a@example\.com/);
  assertClean(page, 'the viewer\'s pages');
  await page.context().close();
});

test('a tenant admin gets the write controls of its own tenant, and none of the platform\'s', async () => {
  const page = await newPage(browser, stack);
  await signIn(page, 'admin-a@example.com', PASSWORD);
  await go(page, `#/t/${A.id}`);
  assert.equal(await page.getByRole('button', { name: 'Create a user in this tenant' }).count(), 1);
  assert.equal(await page.getByLabel('Role of viewer@example.com').count(), 1, 'it changes roles');
  assert.equal(await page.getByRole('button', { name: 'Remove viewer@example.com' }).count(), 1);
  // an admin may not hand out the owner role
  const options = await page.getByLabel('Role of viewer@example.com').locator('option').allTextContents();
  assert.deepEqual(options, ['admin', 'member', 'viewer']);
  await go(page, `#/t/${A.id}/budgets`);
  assert.equal(await page.getByRole('button', { name: 'Add budget' }).count(), 1);
  for (const hash of ['#/providers', '#/routes', '#/prices', '#/tenants']) {
    await go(page, hash);
    const extra = await writeControls(page);
    // on #/tenants it may rename the tenants it administers, nothing else
    const left = hash === '#/tenants' ? extra.filter((x) => !/Rename (alpha|charlie)"/.test(x)) : extra;
    assert.deepEqual(left, [], `platform controls on ${hash} for a tenant admin`);
  }
  assertClean(page);
  await page.context().close();
});

test('a tenant admin cannot reach another tenant\'s pages, a URL typed by hand included', async () => {
  const page = await newPage(browser, stack);
  await signIn(page, 'admin-a@example.com', PASSWORD);
  const nobody = randomId();
  const pairs = [
    [`#/t/${B.id}`, `#/t/${nobody}`],
    [`#/t/${B.id}/budgets`, `#/t/${nobody}/budgets`],
    [`#/t/${B.id}/keys`, `#/t/${nobody}/keys`],
    [`#/t/${B.id}/keys/${keyB.id}`, `#/t/${nobody}/keys/${randomId()}`],
  ];
  for (const [other, missing] of pairs) {
    // typed by hand: a fresh load of the URL, as from the address bar
    await page.goto(`/${other}`);
    await settle(page);
    const seen = await mainText(page);
    const title = await page.title();
    await page.goto(`/${missing}`);
    await settle(page);
    assert.equal(seen.replaceAll(B.id, 'ID').replaceAll(keyB.id, 'KID'),
      (await mainText(page)).replaceAll(nobody, 'ID').replace(/[0-9a-f-]{36}/g, 'KID'),
      `${other} looks like a tenant that does not exist`);
    assert.equal(title, await page.title());
    assert.match(seen, /not found|does not exist|no access/i, `${other} says it is not there`);
    const body = await page.evaluate(() => document.body.innerText);
    for (const secret of ['Bravo Hidden Tenant', 'bravo-hidden-key', '77.25', 'bravo-member@example.com']) {
      assert.ok(!body.includes(secret), `${secret} shown on ${other}`);
    }
  }
  // nor through the views that take a tenant in their query
  for (const hash of [`#/users?tenant=${B.id}`, `#/audit?tenant_id=${B.id}`, `#/requests?tenant_id=${B.id}`, `#/usage?tenant_id=${B.id}`]) {
    await go(page, hash);
    const body = await page.evaluate(() => document.body.innerText);
    for (const secret of ['Bravo Hidden Tenant', 'bravo-hidden-key', 'bravo-member@example.com']) {
      assert.ok(!body.includes(secret), `${secret} shown on ${hash}`);
    }
  }
  // the header's tenant switcher offers only its own tenant
  await go(page, '#/');
  assert.ok(!(await page.locator('#app-header').innerText()).includes('Bravo'));
  await page.context().close();
});

test('a tenant admin adds by email only users it already sees; another tenant\'s user reads like no user', async () => {
  const page = await newPage(browser, stack);
  await signIn(page, 'admin-a@example.com', PASSWORD);
  await go(page, `#/t/${A.id}`);
  const add = async (email) => {
    await page.getByRole('button', { name: 'Add an existing user' }).click();
    const f = page.locator('form[aria-label="Add an existing user"]');
    await f.getByLabel(/^Email of the user/).fill(email);
    await f.getByLabel('Role').selectOption('viewer');
    await f.getByRole('button', { name: 'Add member' }).click();
    return f;
  };
  let f = await add('bravo-member@example.com');
  const err = f.locator('[data-field=email] .field-error');
  await err.filter({ hasText: /./ }).waitFor();
  const unknown = await err.innerText();
  await f.getByRole('button', { name: 'Cancel' }).click();
  f = await add('nobody-at-all@example.com');
  await f.locator('[data-field=email] .field-error').filter({ hasText: /./ }).waitFor();
  assert.equal(unknown, await f.locator('[data-field=email] .field-error').innerText(), 'another tenant\'s user reads like an unknown email');
  await f.getByRole('button', { name: 'Cancel' }).click();
  const members = (await api(stack, 'GET', `/api/v1/tenants/${A.id}/members`)).data.map((m) => m.email);
  assert.ok(!members.includes('bravo-member@example.com'));
  // a member of a tenant it administers is found and added
  await add('carl@example.com');
  await page.getByText('carl@example.com was added as viewer.').waitFor();
  const after = (await api(stack, 'GET', `/api/v1/tenants/${A.id}/members`)).data;
  assert.equal(after.find((m) => m.email === 'carl@example.com').role, 'viewer');
  assertClean(page);
  await page.context().close();
});

test('a tenant admin reads its own tenant\'s audit rows only, without the platform\'s chain verification', async () => {
  const page = await newPage(browser, stack);
  await signIn(page, 'admin-a@example.com', PASSWORD);
  await go(page, `#/audit?tenant_id=${A.id}`);
  const rows = await page.locator('main table.audit tbody tr').allInnerTexts();
  assert.ok(rows.length >= 4, 'its tenant\'s changes are listed');
  for (const r of rows) assert.match(r, /\tAlpha\t/, `only Alpha's rows: ${r}`);
  assert.ok(rows.some((r) => /key\.create/.test(r)));
  assert.equal(await page.getByRole('region', { name: 'Chain verification' }).count(), 0);
  const body = await page.evaluate(() => document.body.innerText);
  for (const secret of ['Bravo Hidden Tenant', 'bravo-hidden-key']) assert.ok(!body.includes(secret));
  // without a tenant in the URL it opens on one it administers
  await go(page, '#/audit');
  assert.ok((await page.locator('main table.audit tbody tr').count()) >= 1);
  assertClean(page);
  await page.context().close();
});
